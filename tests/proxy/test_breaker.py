"""The circuit breaker: repeated shadow failures pause mirroring; it resumes by itself."""

from __future__ import annotations

import socket

import aiohttp
from aiohttp import web

from shadowproxy.proxy.breaker import BreakerState, CircuitBreaker
from tests.conftest import StartProxy, StartUpstream


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_probes_after_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, cooldown=10, clock=clock)
    for _ in range(3):
        assert breaker.allow()
        breaker.record(ok=False)
    assert (BreakerState.OPEN, False) == (breaker.state, breaker.allow())
    clock.now += 10
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one probe at a time
    breaker.record(ok=True)
    assert (BreakerState.CLOSED, True, 1) == (breaker.state, breaker.allow(), breaker.opened)


def test_a_failed_probe_opens_it_again() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, cooldown=5, clock=clock)
    breaker.record(ok=False)
    clock.now += 5
    assert breaker.allow()
    breaker.record(ok=False)
    assert (BreakerState.OPEN, False, 2) == (breaker.state, breaker.allow(), breaker.opened)


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(failures=2, cooldown=5, clock=Clock())
    breaker.record(ok=False)
    breaker.record(ok=True)
    breaker.record(ok=False)
    assert BreakerState.CLOSED == breaker.state


async def test_dead_shadow_trips_the_breaker_and_skips_are_counted(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """With the shadow refusing, after 3 failures requests are skipped as circuit_open;
    the client is served throughout."""

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/v3/genres", ok)
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))
        shadow = f"http://127.0.0.1:{dead.getsockname()[1]}"
        running = await proxy(await upstream(app), shadow, breaker_failures=3, breaker_cooldown=60)
        statuses = []
        for _ in range(10):
            async with client.get(running.traffic_url + "/v3/genres") as response:
                statuses.append(response.status)
            await running.drain(5)
    assert [200] * 10 == statuses
    async with client.get(running.admin_url + "/metrics") as response:
        text = await response.text()
    assert (
        'shadowproxy_mirror_skips_total{endpoint="GET /v3/genres",reason="circuit_open"} 7.0'
        in text
    )
    assert "shadowproxy_shadow_circuit_open 1.0" in text
