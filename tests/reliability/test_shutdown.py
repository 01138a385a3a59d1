"""SIGTERM on ``shadowproxy run``: stop accepting, finish in-flight clients, flush, exit 0.

A real subprocess, so the signal handling, the exit status and the final store flush are the ones
production sees.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from shadowproxy.server import SHUTDOWN_DEADLINE
from shadowproxy.store import open_store
from shadowproxy.store.contract import Store, StoreError
from tests.conftest import StartUpstream
from tests.reliability.conftest import RecordFigure
from tests.reliability.faults import timed_get
from tests.reliability.process import proxy_process
from tests.servers import free_port
from tests.store.conftest import start_mongo

SLOW = 2.0
"""Seconds the primary takes over the in-flight request."""
BURST = 30


def catalogue(version: int, *, slow: float = 0.0) -> web.Application:
    """A catalogue whose list is big enough that comparing it takes real comparator time."""
    page = orjson.dumps(
        {"list": [{"id": i, "names": {"ru": "Клинок " * 20}, "v": version} for i in range(400)]}
    )

    async def titles(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="application/json")

    async def slow_title(request: web.Request) -> web.Response:
        await asyncio.sleep(slow)
        return web.Response(body=page, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v3/title/list", titles)
    app.router.add_get("/v3/title/slow", slow_title)
    return app


def stored_counts(db: Path) -> tuple[int, int]:
    """(comparisons counted, mismatch records) in a SQLite store, read with plain sqlite3."""
    with sqlite3.connect(db) as conn:
        (counted,) = conn.execute(
            "SELECT COALESCE(SUM(matches + mismatches + shadow_errors + skipped), 0) FROM counters"
        ).fetchone()
        (records,) = conn.execute("SELECT COUNT(*) FROM records").fetchone()
    return int(counted), int(records)


async def test_sigterm_finishes_in_flight_requests_and_flushes_comparisons(
    upstream: StartUpstream, tmp_path: Path, record_figure: RecordFigure
) -> None:
    """The slow request in flight at SIGTERM gets its full answer, new connections are refused,
    every queued comparison reaches the store, and the process exits 0 within the deadline."""
    primary = await upstream(catalogue(1, slow=SLOW))
    shadow = await upstream(catalogue(2))
    db = tmp_path / "store.db"
    async with (
        proxy_process(
            tmp_path, primary, shadow, "--store", f"sqlite:///{db}", "--comparators", "1"
        ) as running,
        aiohttp.ClientSession(auto_decompress=False) as client,
        asyncio.TaskGroup() as tasks,
    ):
        slow = tasks.create_task(timed_get(client, running.traffic_url + "/v3/title/slow"))
        burst = await asyncio.gather(
            *(timed_get(client, running.traffic_url + "/v3/title/list") for _ in range(BURST))
        )
        health = await (await client.get(running.admin_url + "/healthz")).json()
        queued = health["queue_depth"]
        signalled = time.perf_counter()
        running.terminate()
        await asyncio.sleep(0.5)
        refused = False
        try:
            await asyncio.open_connection("127.0.0.1", int(running.traffic_url.rsplit(":", 1)[1]))
        except ConnectionRefusedError:
            refused = True
        seen = await slow
        code = await running.wait(SHUTDOWN_DEADLINE + 10)
        took = time.perf_counter() - signalled
        log = running.log_bytes().decode()

    assert [200] * BURST == [s.status for s in burst]
    assert (200, "", burst[0].body) == (seen.status, seen.error, seen.body)
    assert refused, "the traffic port still accepted connections after SIGTERM"
    assert 0 == code, log
    assert took < SHUTDOWN_DEADLINE + 5
    assert (BURST + 1, BURST + 1) == stored_counts(db)
    assert "could not be written" not in log
    assert "were not compared" not in log
    record_figure("queued_at_sigterm", queued)
    record_figure("exit_seconds", round(took, 2))


@pytest.mark.parametrize("spool", [False, True], ids=["no-spool", "spool"])
async def test_sigterm_with_the_store_down_counts_or_spools_what_it_could_not_write(
    upstream: StartUpstream, tmp_path: Path, pymongo_sockets: None, spool: bool
) -> None:
    """MongoDB is down through the whole run. SIGTERM still exits 0 within the deadline; the
    comparisons it could not write are logged as lost, or, with a spool, spooled and written by
    the next start once MongoDB is up: nothing silently lost."""
    primary = await upstream(catalogue(1))
    shadow = await upstream(catalogue(2))
    port = free_port()
    store = f"mongodb://127.0.0.1:{port}/shutdown?serverSelectionTimeoutMS=300"
    args = ["--store", store, *(["--spool-dir", str(tmp_path / "spool")] if spool else [])]
    async with (
        proxy_process(tmp_path, primary, shadow, *args) as running,
        aiohttp.ClientSession() as client,
    ):
        seen = [await timed_get(client, running.traffic_url + "/v3/title/list") for _ in range(5)]
        await asyncio.sleep(0.5)  # compared and handed to the writer
        running.terminate()
        code = await running.wait(SHUTDOWN_DEADLINE + 10)
        log = running.log_bytes().decode()
    assert [200] * 5 == [s.status for s in seen]
    assert 0 == code, log
    if not spool:
        assert "5 comparisons could not be written before shutdown" in log
        return
    assert "5 comparisons spooled for the next start" in log
    server = await asyncio.to_thread(start_mongo, port)
    try:
        async with proxy_process(tmp_path, primary, shadow, *args) as again:
            store_check = open_store(store)
            try:
                await eventually(lambda: _records(store_check), 5)
            finally:
                await store_check.aclose()
            again.terminate()
            assert 0 == await again.wait(SHUTDOWN_DEADLINE + 10)
    finally:
        await asyncio.to_thread(server.stop)


async def _records(store: Store) -> int:
    try:
        await store.aopen()
        return len((await store.mismatches(limit=100)).items)
    except StoreError:
        return 0


async def eventually(
    check: Callable[[], Awaitable[int]], expected: int, timeout: float = 30
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (found := await check()) != expected:
        if loop.time() > deadline:
            raise TimeoutError(f"{found} records, expected {expected}")
        await asyncio.sleep(0.2)
