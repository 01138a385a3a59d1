"""The comparator process is killed (SIGKILL) while traffic flows: clients never notice, a new
comparator takes over, later comparisons are recorded, and the loss is counted as a skip."""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from shadowproxy.server import RunningProxy
from tests.conftest import StartProxy, StartUpstream
from tests.reliability.conftest import RecordFigure
from tests.reliability.faults import TITLE, Seen, metrics_of, sample, timed_get

URL = "/v3/title?id=9174"
ENDPOINT = "GET /v3/title"


def comparators() -> set[int]:
    """PIDs of this process's children started by multiprocessing's spawn (not its tracker)."""
    found = set()
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == me and b"spawn_main" in cmdline:
            found.add(int(entry.name))
    return found


# Equal on both sides but walked, so a comparison lasts long enough to be killed mid-way.
PADDING = list(range(100_000))


def title_body(rating: float) -> bytes:
    return orjson.dumps({**TITLE, "rating": rating, "padding": PADDING})


def catalogue(rating: float) -> web.Application:
    body = title_body(rating)

    async def title(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v3/title", title)
    return app


async def traffic(client: aiohttp.ClientSession, running: RunningProxy, n: int) -> list[Seen]:
    seen = []
    for _ in range(n):
        seen.append(await timed_get(client, running.traffic_url + URL))
        await asyncio.sleep(0.01)
    return seen


async def crashed_proxy(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> tuple[RunningProxy, list[Seen], list[Seen], int, set[int]]:
    """A proxy whose only comparator was SIGKILLed mid-traffic: (proxy, before, during, killed
    PID, comparator PIDs afterwards)."""
    running = await proxy(
        await upstream(catalogue(8.7)), await upstream(catalogue(9.1)), comparators=1
    )
    before = await traffic(client, running, 5)
    assert await running.drain(20)
    [victim] = comparators()
    async with asyncio.TaskGroup() as tasks:
        during = tasks.create_task(traffic(client, running, 30))
        # Killed while it holds exchanges, so the loss path is what is tested.
        for _ in range(5000):
            if running.runtime.pipeline.busy:
                break
            await asyncio.sleep(0.001)
        assert running.runtime.pipeline.busy
        os.kill(victim, signal.SIGKILL)
    assert await running.drain(30)
    await traffic(client, running, 5)  # after the new comparator took over
    assert await running.drain(30)
    return running, before, during.result(), victim, comparators()


async def test_killed_comparator_is_replaced_and_clients_never_notice(
    upstream: StartUpstream,
    proxy: StartProxy,
    client: aiohttp.ClientSession,
    record_figure: RecordFigure,
) -> None:
    """Every client gets the primary's bytes without delay; a new comparator process runs; every
    exchange is counted, the ones lost with the dead process as skipped, the rest compared and
    stored."""
    running, before, during, victim, after = await crashed_proxy(upstream, proxy, client)
    body = title_body(8.7)
    assert [(200, body)] * len(during) == [(s.status, s.body) for s in during]
    assert max(s.seconds for s in during) < max(s.seconds for s in before) + 0.5
    assert victim not in after
    assert 1 == len(after)

    crashed = running.runtime.pipeline.crashed
    text = await metrics_of(client, running.admin_url)
    mismatches = sample(
        text, "shadowproxy_comparisons_total", endpoint=ENDPOINT, verdict="mismatch"
    )
    skipped = sample(text, "shadowproxy_comparisons_total", endpoint=ENDPOINT, verdict="skipped")
    assert crashed >= 1
    assert (40, crashed) == (mismatches + skipped, skipped)
    stored = await running.store.mismatches(endpoint=ENDPOINT, limit=100)
    assert mismatches == len(stored.items)
    assert mismatches >= 10  # the 5 before, the 5 after, and most of those during

    record_figure("crashed", crashed)
    record_figure("client_ms_median", round(1000 * statistics.median(s.seconds for s in during), 1))
    record_figure(
        "baseline_ms_median", round(1000 * statistics.median(s.seconds for s in before), 1)
    )


async def test_comparator_crash_is_counted_with_its_reason(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """/metrics says why comparisons were skipped: ``comparator_crashed``, like every other skip
    reason, so an operator sees crashes without reading logs."""
    running, *_ = await crashed_proxy(upstream, proxy, client)
    text = await metrics_of(client, running.admin_url)
    assert 'reason="comparator_crashed"' in text
