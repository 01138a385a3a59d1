"""The control plane wired into the proxy: switches change what real proxies send to the shadow.

Skipped until the runtime carries a control plane (``Runtime.control``), then it must pass.
"""

from __future__ import annotations

import dataclasses
import time

import aiohttp
import pytest
from aiohttp import web

from shadowproxy.control import Change
from shadowproxy.server import RunningProxy, Runtime
from tests.conftest import StartProxy, StartUpstream
from tests.control.helpers import wait_for
from tests.servers import RedisServer

pytestmark = pytest.mark.skipif(
    "control" not in {f.name for f in dataclasses.fields(Runtime)},
    reason="the control plane is not wired into the runtime yet",
)

CHANGE = {"X-Requested-With": "shadowproxy"}
HITS = web.AppKey("hits", list[str])


def backend() -> web.Application:
    hits: list[str] = []

    async def title(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"id": 1, "name": "Клинок"})

    app = web.Application()
    app[HITS] = hits
    app.router.add_get("/titles/{id}", title)
    return app


async def skips(client: aiohttp.ClientSession, proxy: RunningProxy, reason: str) -> float:
    async with client.get(proxy.admin_url + "/metrics") as response:
        text = await response.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("shadowproxy_mirror_skips_total") and f'reason="{reason}"' in line
    )


async def test_kill_switch_through_one_proxy_stops_mirroring_on_both(
    redis_server: RedisServer,
    upstream: StartUpstream,
    proxy: StartProxy,
    client: aiohttp.ClientSession,
) -> None:
    """PUT killed on proxy one's admin API: proxy two stops mirroring too; clients are served;
    the skips are counted as disabled; /healthz shows the control plane and its state."""
    primary_app, shadow_app = backend(), backend()
    primary, shadow = await upstream(primary_app), await upstream(shadow_app)
    one = await proxy(primary, shadow, control=redis_server.url)
    two = await proxy(primary, shadow, control=redis_server.url)

    async with client.put(
        one.admin_url + "/api/v1/control", json={"killed": True}, headers=CHANGE
    ) as response:
        assert 200 == response.status
    await wait_for(lambda: two.runtime.control.current.killed, timeout=1.5)
    for n in range(5):
        async with client.get(f"{two.traffic_url}/titles/{n}") as response:
            assert 200 == response.status
    await two.drain()

    assert (5, []) == (len(primary_app[HITS]), shadow_app[HITS])
    assert 5.0 == await skips(client, two, "disabled")
    async with client.get(two.admin_url + "/healthz") as response:
        health = await response.json()
    assert ("redis", True, 1) == (
        health["control"]["mode"],
        health["control"]["connected"],
        health["control"]["version"],
    )


async def test_fleet_rate_cap_limits_shadow_calls(
    redis_server: RedisServer,
    upstream: StartUpstream,
    proxy: StartProxy,
    client: aiohttp.ClientSession,
) -> None:
    """A cap of 2/s across two proxies: 40 requests in a burst reach the shadow at most
    rate x time + burst times; the rest are counted as rate_limited; every client is served."""
    primary_app, shadow_app = backend(), backend()
    primary, shadow = await upstream(primary_app), await upstream(shadow_app)
    one = await proxy(primary, shadow, control=redis_server.url)
    two = await proxy(primary, shadow, control=redis_server.url)
    await one.runtime.control.update(Change(shadow_rps=2))
    await wait_for(lambda: two.runtime.control.rate() == 2.0)

    started = time.monotonic()
    for n in range(40):
        target = one if n % 2 else two
        async with client.get(f"{target.traffic_url}/titles/{n}") as response:
            assert 200 == response.status
    await one.drain()
    await two.drain()
    elapsed = time.monotonic() - started

    assert 40 == len(primary_app[HITS])
    assert 1 <= len(shadow_app[HITS]) <= 2.0 * elapsed + 2.0
    limited = await skips(client, one, "rate_limited") + await skips(client, two, "rate_limited")
    assert 40 == len(shadow_app[HITS]) + limited
