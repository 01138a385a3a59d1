"""open_store picks the engine from the URL and explains a bad one in one line."""

from __future__ import annotations

import pytest

from shadowproxy.store import open_store
from shadowproxy.store.contract import StoreURLError
from shadowproxy.store.mongo import MongoStore
from shadowproxy.store.sqlite import SQLiteStore


@pytest.mark.parametrize(
    "url",
    [
        "mongodb://127.0.0.1:27017/",
        "mongodb://u:p@h1:27017,h2:27018/prod?replicaSet=rs&tls=true",
        "mongodb+srv://user:secret@cluster0.example.net/prod?retryWrites=true",
    ],
)
def test_mongodb_urls_open_a_mongo_store_without_connecting(url: str) -> None:
    """Any standard connection string; nothing is contacted until aopen."""
    assert isinstance(open_store(url), MongoStore)


def test_the_database_comes_from_the_path() -> None:
    """The URL path names the database; the default is shadowproxy."""
    from shadowproxy.store import mongo_database

    assert ("prod", "shadowproxy") == (
        mongo_database("mongodb://h/prod?tls=true"),
        mongo_database("mongodb://h"),
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgres://h/db", "unknown store"),
        ("shadowproxy.db", "unknown store"),
        ("sqlite:///", "expected sqlite:///file.db"),
        ("sqlite:///x.db?mode=ro", "no query"),
        ("mongodb:///db", "needs a host"),
        ("mongodb://h/bad.name", "not a valid database name"),
        ("mongodb://user:hunter2@h/bad$name", "user:\\*\\*\\*@h"),
    ],
)
def test_bad_urls_are_refused_clearly(url: str, message: str) -> None:
    """A malformed or unknown URL raises StoreURLError naming the problem (never a password)."""
    with pytest.raises(StoreURLError, match=message) as caught:
        open_store(url)
    assert "hunter2" not in str(caught.value)


def test_sqlite_is_the_embedded_default() -> None:
    assert isinstance(open_store("sqlite:///shadowproxy.db"), SQLiteStore)
