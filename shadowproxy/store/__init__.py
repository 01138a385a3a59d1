"""Where comparisons are kept: one contract (:mod:`.contract`), two engines, one writer.

``open_store(url)`` picks the engine from the URL; :class:`~.writer.StoreWriter` is the only
way the pipeline writes to it. Nothing outside this package knows which engine runs.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from shadowproxy.settings import Settings
from shadowproxy.store.contract import Store, StoreError, StoreURLError

_BAD_DB_CHARS = set('/\\. "$\x00')


def open_store(
    url: str,
    *,
    body_max: int = 65536,
    group_store_per_hour: int = 50,
    retention_days: float = 14.0,
    max_bytes: int = 1 << 30,
) -> Store:
    """The store a ``--store`` URL names; nothing is connected until ``aopen()``.

    ``sqlite:///relative.db`` (relative to the working directory), ``sqlite:////abs/path.db``,
    ``mongodb://…`` or ``mongodb+srv://…`` (any standard connection string; the database is the
    URL path, ``shadowproxy`` by default). Raises :class:`StoreURLError` for anything else.
    """
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        from shadowproxy.store.sqlite import SQLiteStore, sqlite_path

        path = sqlite_path(url)
        if "?" in path or "#" in path:
            raise StoreURLError(f"--store {url!r}: SQLite URLs take no query or fragment")
        if path != ":memory:" and (not path or path.endswith("/")):
            raise StoreURLError(
                f"--store {url!r}: expected sqlite:///file.db or sqlite:////absolute/path.db"
            )
        return SQLiteStore(
            path,
            body_max=body_max,
            group_store_per_hour=group_store_per_hour,
            retention_days=retention_days,
            max_bytes=max_bytes,
        )
    if scheme in {"mongodb", "mongodb+srv"}:
        database = mongo_database(url)
        from shadowproxy.store.mongo import MongoStore

        return MongoStore(
            url,
            database,
            body_max=body_max,
            group_store_per_hour=group_store_per_hour,
            retention_days=retention_days,
        )
    raise StoreURLError(
        f"--store {url!r}: unknown store; expected sqlite:///file.db, sqlite:////abs/path.db "
        "or mongodb://host/database"
    )


def mongo_database(url: str) -> str:
    """The database named in a MongoDB connection string (``shadowproxy`` when none is)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise StoreURLError(f"--store: malformed MongoDB URL: {exc}") from None
    host = parts.netloc.rpartition("@")[2]
    if not host or host.startswith(","):
        raise StoreURLError(f"--store {_safe(url)!r}: a MongoDB URL needs a host")
    database = parts.path.lstrip("/") or "shadowproxy"
    if _BAD_DB_CHARS & set(database) or len(database) > 63:
        raise StoreURLError(f"--store {_safe(url)!r}: {database!r} is not a valid database name")
    return database


def _safe(url: str) -> str:
    """The URL without its password, for error messages."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at:
        return url
    user = creds.partition(":")[0]
    return f"{scheme}{sep}{user}:***@{host}"


__all__ = ["Store", "StoreError", "StoreURLError", "open_store", "store_from_settings"]


def store_from_settings(settings: Settings) -> Store:
    """:func:`open_store` with the ``--store*`` options of ``settings``."""
    return open_store(
        settings.store,
        body_max=settings.store_body_max,
        group_store_per_hour=settings.group_store_per_hour,
        retention_days=settings.retention_days,
        max_bytes=settings.store_max_bytes,
    )
