"""Running ``shadowproxy worker`` in tests: settings, an in-process worker, and what to check.

Used by the worker's own tests and by the CLI's; real Redis (``tests.servers``), real SQLite.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from shadowproxy.model import Verdict
from shadowproxy.queue import RedisStream, StreamPublisher
from shadowproxy.rules.ruleset import DEFAULT_RULES
from shadowproxy.settings import Settings
from shadowproxy.store import open_store
from shadowproxy.store.contract import Store
from shadowproxy.tasks import TaskSet
from shadowproxy.worker import Worker, WorkerSettings, open_worker
from tests.queue.traffic import exchanges
from tests.servers import RedisServer

STREAM = "test:exchanges"
GROUP = "workers"


def settings_for(redis: RedisServer, tmp_path: Path, **overrides: Any) -> WorkerSettings:
    base_fields = {k: overrides.pop(k) for k in list(overrides) if k in Settings.__slots__}
    base_fields.setdefault("store", f"sqlite:///{tmp_path / 'store.db'}")
    base = Settings(queue=redis.url, **base_fields)
    values: dict[str, Any] = {
        "stream": STREAM,
        "group": GROUP,
        "consumer": "w1",
        "batch": 20,
        "block": 0.1,
        "claim_idle": 30.0,
    }
    values.update(overrides)
    return WorkerSettings(base=base, **values)


@asynccontextmanager
async def working(settings: WorkerSettings) -> AsyncIterator[Worker]:
    """A worker running in this process until the block ends (then stopped as SIGTERM would)."""
    stop = asyncio.Event()
    tasks = TaskSet("test-worker")
    async with open_worker(settings) as worker:
        tasks.spawn(worker.run(stop))
        try:
            yield worker
        finally:
            stop.set()
            assert 0 == await tasks.wait(15)
            await tasks.aclose()


async def publish(redis: RedisServer, count: int, *, start: int = 0) -> None:
    publisher = StreamPublisher(redis.url, stream=STREAM)
    await publisher.start()
    for exchange in exchanges(count, start=start):
        publisher.submit(exchange, DEFAULT_RULES, "proxy-rules")
    assert 0 == await publisher.aclose(10)


@asynccontextmanager
async def opened_store(tmp_path: Path) -> AsyncIterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    await store.aopen()
    try:
        yield store
    finally:
        await store.aclose()


async def verdict_totals(store: Store) -> dict[Verdict, int]:
    totals = dict.fromkeys(Verdict, 0)
    for row in await store.summary():
        totals[Verdict.MATCH] += row.matches
        totals[Verdict.MISMATCH] += row.mismatches
        totals[Verdict.SHADOW_ERROR] += row.shadow_errors
        totals[Verdict.SKIPPED] += row.skipped
    return {verdict: n for verdict, n in totals.items() if n}


async def stored_ids(store: Store) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = await store.mismatches(cursor=cursor, limit=200)
        ids.extend(record.id for record in page.items)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


class StoreLock:
    """Another writer holding the SQLite write lock: the store is there but every write fails."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self._conn.execute("ROLLBACK")
        self._conn.close()


async def all_acked(worker: Worker, stream: RedisStream, count: int) -> bool:
    """The worker acknowledged ``count`` entries and none is left pending in the group."""
    return worker.stats().acked == count and (await stream.pending(GROUP)).total == 0


@pytest.fixture(name="stream")
async def stream_fixture(redis_server: RedisServer) -> AsyncIterator[RedisStream]:
    stream = RedisStream(redis_server.url, STREAM)
    yield stream
    await stream.aclose()
