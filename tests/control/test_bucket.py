"""The shadow rate cap: a fleet-wide token bucket in Redis, leased in batches, local fallback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from shadowproxy.control import Change, ControlPlane, ShadowRateCap
from shadowproxy.control.bucket import LocalBucket
from shadowproxy.control.link import RedisLink
from tests.control.helpers import wait_for
from tests.servers import RedisServer


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as exits:
        yield exits


async def started(stack: AsyncExitStack, url: str, **options: Any) -> ControlPlane:
    plane = ControlPlane(url, retry_max=0.2, timeout=1.0, **options)
    await plane.start()
    stack.push_async_callback(plane.aclose)
    return plane


async def hammer(caps: list[ShadowRateCap], seconds: float, callers: int = 8) -> tuple[int, float]:
    """Call take() from ``callers`` tasks per cap for ``seconds``; return (grants, elapsed)."""
    granted = 0
    started_at = time.monotonic()
    deadline = started_at + seconds

    async def caller(cap: ShadowRateCap) -> None:
        nonlocal granted
        while time.monotonic() < deadline:
            if await cap.take():
                granted += 1
            await asyncio.sleep(0.002)

    await asyncio.gather(*(caller(cap) for cap in caps for _ in range(callers)))
    return granted, time.monotonic() - started_at


def test_local_bucket_refills_by_elapsed_time() -> None:
    """A full bucket gives its burst, then one token per 1/rate seconds, never above the burst."""
    bucket = LocalBucket()
    first = [bucket.take(2.0, 3.0, 0.0) for _ in range(5)]
    assert [True, True, True, False, False] == first
    assert [True, False] == [bucket.take(2.0, 3.0, 0.5), bucket.take(2.0, 3.0, 0.5)]
    assert 3 == sum(bucket.take(2.0, 3.0, 100.0) for _ in range(10))


async def test_rate_zero_means_no_cap_and_no_io(tmp_path: Any) -> None:
    """With no cap, take() says yes without touching Redis (here one that is not even running)."""
    link = RedisLink(RedisServer(tmp_path).url, timeout=0.2)
    cap = ShadowRateCap(rate=lambda: 0.0, link=link)
    try:
        assert [True] * 100 == [await cap.take() for _ in range(100)]
        assert (0, 0, 0) == (cap.leases, cap.lease_errors, cap.local_decisions)
    finally:
        await link.aclose()


async def test_local_fallback_shares_the_rate_with_the_fleet() -> None:
    """Without Redis, each proxy allows rate / fleet size: 10/s over 2 proxies is 5/s here."""
    clock = Clock()
    cap = ShadowRateCap(rate=lambda: 10.0, fleet_size=lambda: 2, clock=clock)

    burst = [await cap.take() for _ in range(8)]
    clock.now += 1.0
    next_second = [await cap.take() for _ in range(8)]

    assert [True] * 5 + [False] * 3 == burst
    assert [True] * 5 + [False] * 3 == next_second
    assert (10, 6, 16) == (cap.granted, cap.denied, cap.local_decisions)


async def test_one_lease_in_flight_serves_every_waiting_caller(
    redis_server: RedisServer,
) -> None:
    """Fifty shadow calls at once make one Redis round trip: a lease of rate/10 tokens, shared;
    the rest are refused until the next lease."""
    link = RedisLink(redis_server.url)
    cap = ShadowRateCap(rate=lambda: 100.0, link=link)
    try:
        results = await asyncio.gather(*(cap.take() for _ in range(50)))
    finally:
        await link.aclose()

    assert (10, 40) == (results.count(True), results.count(False))
    assert (1, 0, 0) == (cap.leases, cap.lease_errors, cap.local_decisions)


async def test_fleet_cap_holds_across_two_proxies(
    redis_server: RedisServer, stack: AsyncExitStack
) -> None:
    """Two proxies hammering one fleet cap of 20/s: together they never get more than
    rate x time + burst, they do get tokens (from Redis, not the local fallback), and they ask
    Redis in batches, not once per call."""
    one = await started(stack, redis_server.url, shadow_rps=20.0)
    two = await started(stack, redis_server.url, shadow_rps=20.0)

    granted, elapsed = await hammer([one.rate_cap, two.rate_cap], seconds=1.5)

    burst = 20.0
    assert granted <= 20.0 * elapsed + burst
    assert granted >= burst / 2
    assert (0, 0) == (one.rate_cap.local_decisions, two.rate_cap.local_decisions)
    assert one.rate_cap.leases > 0
    assert two.rate_cap.leases > 0
    assert one.rate_cap.leases + two.rate_cap.leases <= 2 * 40 * elapsed


async def test_rate_override_from_the_fleet_applies(
    redis_server: RedisServer, stack: AsyncExitStack
) -> None:
    """A rate set through the control plane replaces --shadow-rps everywhere; 0 lifts the cap."""
    one = await started(stack, redis_server.url, shadow_rps=0.0)
    two = await started(stack, redis_server.url, shadow_rps=0.0)

    await one.update(Change(shadow_rps=5))
    await wait_for(lambda: two.rate() == 5.0)
    granted, elapsed = await hammer([two.rate_cap], seconds=1.0, callers=4)
    assert granted <= 5.0 * elapsed + 5.0

    await one.update(Change(shadow_rps=0))
    await wait_for(lambda: two.rate() == 0.0)
    assert [True] * 200 == [await two.rate_cap.take() for _ in range(200)]


async def test_redis_down_falls_back_to_the_local_bucket(
    redis_server: RedisServer, stack: AsyncExitStack
) -> None:
    """Redis stops: the cap keeps deciding, locally, still bounded by rate x time + burst."""
    plane = await started(stack, redis_server.url, shadow_rps=10.0)
    assert await plane.rate_cap.take()

    redis_server.stop()
    await wait_for(lambda: not plane.connected)
    granted, elapsed = await hammer([plane.rate_cap], seconds=1.0, callers=4)

    assert plane.rate_cap.local_decisions > 0
    assert 1 <= granted <= 10.0 * elapsed + 10.0


async def test_local_mode_splits_the_cap_over_serving_processes() -> None:
    """Local mode with --workers 4 and a cap of 8/s: this process allows its 2/s share."""
    plane = ControlPlane("", shadow_rps=8.0, processes=4)

    results = [await plane.rate_cap.take() for _ in range(10)]

    assert [True, True] + [False] * 8 == results


async def test_lowered_cap_is_not_outrun_by_an_old_lease(redis_server: RedisServer) -> None:
    """Tokens leased at 1000/s are dropped when the cap falls to 2/s: the next calls get at
    most the new burst."""
    link = RedisLink(redis_server.url)
    rate = [1000.0]
    cap = ShadowRateCap(rate=lambda: rate[0], link=link)
    try:
        assert await cap.take()
        rate[0] = 2.0
        results = [await cap.take() for _ in range(20)]
    finally:
        await link.aclose()

    assert 1 <= results.count(True) <= 2


async def test_closed_plane_decides_locally(redis_server: RedisServer) -> None:
    """After close (shutdown, shadow calls still draining) the cap opens no new Redis
    connection: it decides locally."""
    plane = ControlPlane(redis_server.url, shadow_rps=10.0, timeout=1.0)
    await plane.start()
    await plane.aclose()

    assert await plane.rate_cap.take()
    assert (0, 1) == (plane.rate_cap.leases, plane.rate_cap.local_decisions)
