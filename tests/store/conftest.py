"""Store fixtures: a real MongoDB-wire server (secantusdb) per session and a store per engine."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from secantus.server import SecantusDBServer

from shadowproxy.store import open_store
from shadowproxy.store.contract import Store

_databases = itertools.count(1)


def start_mongo(port: int = 0, storage: str = ":memory:", **options: Any) -> SecantusDBServer:
    """A MongoDB-wire server on 127.0.0.1 with a 1 s TTL sweep."""
    server = SecantusDBServer(
        host="127.0.0.1",
        port=port,
        storage_path=storage,
        enable_test_commands=False,
        ttl_sweep_seconds=1,
        **options,
    )
    server.start()
    return server


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[SecantusDBServer]:
    server = start_mongo()
    yield server
    server.stop()


@pytest.fixture
def mongo_url(mongo_server: SecantusDBServer) -> str:
    """A fresh database on the session's server."""
    return f"mongodb://127.0.0.1:{mongo_server.port}/sp_test_{next(_databases)}"


StoreFactory = Callable[..., Store]


@pytest.fixture(params=["sqlite", "mongodb"])
async def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, mongo_server: SecantusDBServer
) -> AsyncIterator[StoreFactory]:
    """Open stores of the parametrised engine, each on fresh storage; all closed afterwards."""
    opened: list[Store] = []
    engine = request.param

    def factory(**options: Any) -> Store:
        if engine == "sqlite":
            url = f"sqlite:///{tmp_path}/store-{len(opened)}.db"
        else:
            url = f"mongodb://127.0.0.1:{mongo_server.port}/sp_test_{next(_databases)}"
        store = open_store(url, **options)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.aclose()


@pytest.fixture
async def store(make_store: StoreFactory) -> Store:
    """An open store of each engine."""
    opened = make_store()
    await opened.aopen()
    return opened
