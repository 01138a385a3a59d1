"""The shadow's circuit breaker end to end: a dead shadow pauses mirroring, a shadow that comes
back is mirrored again after the cool-down, by itself, with no restart. (Opening is covered in
tests/proxy/test_breaker.py; this adds the recovery.)"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from tests.conftest import StartProxy, StartUpstream
from tests.reliability.faults import TITLE_BYTES, healthy_app, metrics_of, sample, timed_get
from tests.servers import free_port

URL = "/v3/title?id=9174"
ENDPOINT = "GET /v3/title"
COOLDOWN = 0.5


async def test_mirroring_resumes_by_itself_when_the_shadow_returns(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """3 failures open the breaker (the next requests are skipped as circuit_open); once the
    shadow listens again and the cool-down has passed, requests are compared again."""
    port = free_port()
    running = await proxy(
        await upstream(healthy_app()),
        f"http://127.0.0.1:{port}",
        breaker_failures=3,
        breaker_cooldown=COOLDOWN,
    )
    for _ in range(6):
        assert (200, TITLE_BYTES) == (
            (seen := await timed_get(client, running.traffic_url + URL)).status,
            seen.body,
        )
        assert await running.drain(5)
    text = await metrics_of(client, running.admin_url)
    assert (3, 3, 1) == (
        sample(text, "shadowproxy_comparisons_total", endpoint=ENDPOINT, verdict="shadow_error"),
        sample(text, "shadowproxy_mirror_skips_total", endpoint=ENDPOINT, reason="circuit_open"),
        sample(text, "shadowproxy_shadow_circuit_open"),
    )

    runner = web.AppRunner(healthy_app(), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.sleep(COOLDOWN * 1.5)
        for _ in range(3):
            await timed_get(client, running.traffic_url + URL)
            assert await running.drain(5)
        text = await metrics_of(client, running.admin_url)
    finally:
        await runner.cleanup()
    assert (3, 0, 1) == (
        sample(text, "shadowproxy_comparisons_total", endpoint=ENDPOINT, verdict="match"),
        sample(text, "shadowproxy_shadow_circuit_open"),
        sample(text, "shadowproxy_shadow_circuit_opened_total"),
    )
