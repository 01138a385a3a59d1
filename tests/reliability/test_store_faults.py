"""The store fails under a running proxy: unwritable or down at start-up, locked (slow), dying and
coming back. The client's latency does not move, /healthz says ``degraded`` while it lasts, and
every record queued within the caps arrives once the store is back, without a restart.

tests/store/test_writer.py covers the writer alone; these run the whole proxy, SQLite and a real
MongoDB-wire server (secantusdb).
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from shadowproxy.server import RunningProxy
from tests.conftest import StartProxy, StartUpstream
from tests.polling import eventually
from tests.reliability.conftest import RecordFigure
from tests.reliability.faults import TITLE, Seen, metrics_of, sample, timed_get
from tests.servers import free_port
from tests.store.conftest import start_mongo

URL = "/v3/title?id=9174"
BURST = 12


def catalogue(rating: float) -> web.Application:
    body = orjson.dumps({**TITLE, "rating": rating})

    async def title(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v3/title", title)
    return app


async def health(client: aiohttp.ClientSession, running: RunningProxy) -> dict[str, Any]:
    async with client.get(running.admin_url + "/healthz") as response:
        assert 200 == response.status  # degraded is still serving: load balancers keep it
        data: dict[str, Any] = await response.json()
        return data


async def stored(running: RunningProxy) -> int:
    """Mismatch records in the proxy's store (0 while it cannot answer)."""
    try:
        return len((await running.store.mismatches(limit=500)).items)
    except Exception:
        return 0


async def burst(client: aiohttp.ClientSession, running: RunningProxy, n: int = BURST) -> list[Seen]:
    return [await timed_get(client, running.traffic_url + URL) for _ in range(n)]


class Harness:
    """Two backends that disagree (every exchange is a stored mismatch) and a baseline proxy
    whose store is healthy, measured in the same test."""

    def __init__(self, primary: str, shadow: str, baseline: list[Seen]) -> None:
        self.primary = primary
        self.shadow = shadow
        self.baseline = baseline

    def assert_unaffected(self, seen: list[Seen], record_figure: RecordFigure) -> None:
        """All answered 200 with the primary's bytes, no slower than the baseline (+ margin)."""
        body = orjson.dumps({**TITLE, "rating": 8.7})
        assert [(200, body)] * len(seen) == [(s.status, s.body) for s in seen]
        assert max(s.seconds for s in seen) < max(s.seconds for s in self.baseline) + 0.5
        record_figure(
            "client_ms_median", round(1000 * statistics.median(s.seconds for s in seen), 1)
        )
        record_figure(
            "baseline_ms_median",
            round(1000 * statistics.median(s.seconds for s in self.baseline), 1),
        )


async def harness(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> Harness:
    primary = await upstream(catalogue(8.7))
    shadow = await upstream(catalogue(9.1))
    healthy = await proxy(primary, shadow)
    return Harness(primary, shadow, await burst(client, healthy))


def test_sqlite_unwritable_at_start_up_fails_fast_in_one_line(tmp_path: Path) -> None:
    """An SQLite store that cannot be created (a file where its directory should be) is a
    configuration error: ``shadowproxy run`` exits 2 with one line naming the store."""
    (tmp_path / "blocked").write_text("not a directory")
    result = subprocess.run(
        [sys.executable, "-m", "shadowproxy", "run",
         "--primary", "http://127.0.0.1:9", "--shadow", "http://127.0.0.1:9",
         "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
         "--store", "sqlite:///blocked/store.db"],
        cwd=tmp_path, capture_output=True, check=False, timeout=60,
    )  # fmt: skip
    lines = result.stderr.decode().strip().splitlines()
    assert (2, 1) == (result.returncode, len(lines)), result.stderr.decode()[-2000:]
    assert lines[0].startswith("shadowproxy: --store sqlite:///blocked/store.db")


async def test_sqlite_locked_mid_run_then_released(
    upstream: StartUpstream,
    proxy: StartProxy,
    client: aiohttp.ClientSession,
    tmp_path: Path,
    record_figure: RecordFigure,
) -> None:
    """Another process holds the database's write lock (a slow store): clients are unaffected,
    /healthz turns degraded when writes time out, and everything lands after the lock goes."""
    h = await harness(upstream, proxy, client)
    db = tmp_path / "locked.db"
    running = await proxy(h.primary, h.shadow, store=f"sqlite:///{db}")
    await burst(client, running, 1)
    await eventually(lambda: _equals(stored(running), 1))
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        seen = await burst(client, running)
        h.assert_unaffected(seen, record_figure)
        await eventually(lambda: _degraded(client, running), timeout=20)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    await eventually(lambda: _equals(stored(running), BURST + 1))
    await eventually(lambda: _ok(client, running))
    text = await metrics_of(client, running.admin_url)
    assert 0 == sample(text, "shadowproxy_store_dropped_records_total")


async def test_mongodb_down_at_start_up_then_up(
    pymongo_sockets: None,
    upstream: StartUpstream,
    proxy: StartProxy,
    client: aiohttp.ClientSession,
    record_figure: RecordFigure,
) -> None:
    """MongoDB is not there when the proxy starts: it serves, degraded; when MongoDB comes up,
    the records buffered meanwhile are all written."""
    h = await harness(upstream, proxy, client)
    port = free_port()
    running = await proxy(
        h.primary, h.shadow, store=f"mongodb://127.0.0.1:{port}/late?serverSelectionTimeoutMS=300"
    )
    seen = await burst(client, running)
    h.assert_unaffected(seen, record_figure)
    await eventually(lambda: _degraded(client, running))
    server = await asyncio.to_thread(start_mongo, port)
    try:
        await eventually(lambda: _equals(stored(running), BURST), timeout=30)
        await eventually(lambda: _ok(client, running))
    finally:
        await asyncio.to_thread(server.stop)


async def test_mongodb_dies_mid_run_and_returns(
    pymongo_sockets: None,
    upstream: StartUpstream,
    proxy: StartProxy,
    client: aiohttp.ClientSession,
    tmp_path: Path,
    record_figure: RecordFigure,
) -> None:
    """MongoDB stops mid-run and restarts on the same port and data: clients never notice,
    records spill to the disk spool meanwhile, and every one is in the store afterwards."""
    h = await harness(upstream, proxy, client)
    port, data = free_port(), tmp_path / "mongo-data"
    server = await asyncio.to_thread(start_mongo, port, str(data))
    try:
        running = await proxy(
            h.primary,
            h.shadow,
            store=f"mongodb://127.0.0.1:{port}/outage?serverSelectionTimeoutMS=300",
            spool_dir=tmp_path / "spool",
            # Small, so the outage's records must go to the spool (it spills past half).
            store_buffer=10,
        )
        await burst(client, running, 3)
        await eventually(lambda: _equals(stored(running), 3), describe=running.runtime.writer.stats)
        await asyncio.to_thread(server.stop)
        seen = await burst(client, running)
        h.assert_unaffected(seen, record_figure)
        await eventually(lambda: _degraded(client, running))
        # The writer spills on its own clock once the buffer is half full: wait for it.
        await eventually(lambda: _spooled(client, running))
        server = await asyncio.to_thread(start_mongo, port, str(data))
        await eventually(
            lambda: _equals(stored(running), BURST + 3), 30, running.runtime.writer.stats
        )
        await eventually(lambda: _ok(client, running))
        text = await metrics_of(client, running.admin_url)
        assert (0, 0) == (
            sample(text, "shadowproxy_store_dropped_records_total"),
            sample(text, "shadowproxy_store_spooled_records"),
        )
    finally:
        await asyncio.to_thread(server.stop)


async def _equals(count: Any, expected: int) -> bool:
    return bool(await count == expected)


async def _spooled(client: aiohttp.ClientSession, running: RunningProxy) -> bool:
    text = await metrics_of(client, running.admin_url)
    return sample(text, "shadowproxy_store_spooled_records") > 0


async def _degraded(client: aiohttp.ClientSession, running: RunningProxy) -> bool:
    return bool((await health(client, running))["status"] == "degraded")


async def _ok(client: aiohttp.ClientSession, running: RunningProxy) -> bool:
    return bool((await health(client, running))["status"] == "ok")
