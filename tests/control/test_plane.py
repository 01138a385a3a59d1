"""The control plane against a real Redis: two planes stand for two proxies of one fleet."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from types import MappingProxyType
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from shadowproxy.control import Change, ControlPlane, ControlUnavailableError, Switches
from shadowproxy.control.link import DEFAULT_NAMESPACE
from shadowproxy.model import SkipReason
from tests.control.helpers import wait_for
from tests.servers import RedisServer

STATE_KEY = f"{DEFAULT_NAMESPACE}:switches"

StartPlane = Callable[..., Any]


@pytest.fixture
async def planes() -> AsyncIterator[StartPlane]:
    """Start planes: ``await planes(url, **options)``; all closed at the end."""
    async with AsyncExitStack() as stack:

        async def start(url: str, **options: Any) -> ControlPlane:
            options.setdefault("retry_max", 0.2)
            options.setdefault("timeout", 1.0)
            plane = ControlPlane(url, **options)
            await plane.start()
            stack.push_async_callback(plane.aclose)
            return plane

        yield start


async def raw_redis(server: RedisServer) -> aioredis.Redis:
    return aioredis.Redis.from_url(server.url)


async def test_change_through_one_plane_reaches_the_other_by_pubsub(
    redis_server: RedisServer, planes: StartPlane
) -> None:
    """A kill switch set through one proxy is in force in the other within a second, pushed by
    pub/sub (the periodic re-read is a minute away, so it cannot be what delivered it)."""
    one = await planes(redis_server.url, resync_interval=60)
    two = await planes(redis_server.url, resync_interval=60)
    assert (True, True) == (one.connected, two.connected)

    await one.update(Change(killed=True))
    took = await wait_for(lambda: two.current.killed, timeout=1.5)

    assert took < 1.5
    assert SkipReason.DISABLED == two.current.skip_reason("titles.list")
    assert 1 == two.current.version
    assert one.current.to_dict() == two.current.to_dict()


async def test_every_kind_of_switch_travels(redis_server: RedisServer, planes: StartPlane) -> None:
    """Sampling, the rate cap and endpoint overrides reach the other proxy, and clearing works."""
    one = await planes(redis_server.url, resync_interval=60, sample=100.0, shadow_rps=0.0)
    two = await planes(redis_server.url, resync_interval=60, sample=100.0, shadow_rps=0.0)

    await one.update(
        Change(sample=12.5, shadow_rps=40, endpoints=MappingProxyType({"titles.list": False}))
    )
    await wait_for(lambda: two.current.version == 1)
    assert 12.5 == two.current.sample_percent(two.sample, None)
    assert 40.0 == two.rate()
    assert SkipReason.RULE_OFF == two.current.skip_reason("titles.list")

    await one.update(
        Change(sample=None, shadow_rps=None, endpoints=MappingProxyType({"titles.list": None}))
    )
    await wait_for(lambda: two.current.version == 2)
    assert Switches(version=2, updated_at=two.current.updated_at).to_dict() == (
        two.current.to_dict()
    )
    assert 0.0 == two.rate()


async def test_concurrent_writers_lose_no_change(
    redis_server: RedisServer, planes: StartPlane
) -> None:
    """Forty changes through two proxies at once: every one is kept (optimistic transactions)."""
    one = await planes(redis_server.url)
    two = await planes(redis_server.url)

    await asyncio.gather(
        *(
            plane.update(Change(endpoints=MappingProxyType({f"e{n}": n % 2 == 0})))
            for n, plane in enumerate([one, two] * 20)
        )
    )

    stored = await one.fetch()
    assert 40 == stored.version
    assert {f"e{n}": n % 2 == 0 for n in range(40)} == dict(stored.endpoints)
    await wait_for(lambda: two.current.version == 40)


async def test_redis_away_keeps_last_state_then_reconnects_and_resyncs(
    redis_server: RedisServer, planes: StartPlane
) -> None:
    """Redis stops: both proxies keep the last known switches and say they are disconnected;
    changes fail rather than apply to one proxy. Redis restarts empty on the same port: the
    proxies reconnect, write their last known state back, and follow new changes again."""
    one = await planes(redis_server.url, resync_interval=0.5)
    two = await planes(redis_server.url, resync_interval=0.5)
    await one.update(Change(killed=True, sample=30))
    await wait_for(lambda: two.current.version == 1)

    redis_server.stop()
    await wait_for(lambda: not one.connected and not two.connected)

    assert (True, True) == (one.current.killed, two.current.killed)
    assert (True, True) == (one.degraded, two.degraded)
    assert two.last_error is not None
    assert "redis" in two.last_error.lower()
    with pytest.raises(ControlUnavailableError):
        await one.update(Change(killed=False))
    assert one.current.killed

    redis_server.start()
    await wait_for(lambda: one.connected and two.connected)
    assert (None, None) == (one.last_error, two.last_error)
    stored = await two.fetch()
    assert (True, 30.0, 1) == (stored.killed, stored.sample, stored.version)

    await two.update(Change(killed=False))
    await wait_for(lambda: not one.current.killed)
    assert 2 == one.current.version


async def test_missed_message_heals_on_the_periodic_reread(
    redis_server: RedisServer, planes: StartPlane
) -> None:
    """A state written without a publish (a message the proxy missed) is picked up anyway."""
    plane = await planes(redis_server.url, resync_interval=0.2)
    client = await raw_redis(redis_server)
    try:
        await client.set(STATE_KEY, Switches(killed=True, version=5, updated_at=1.0).to_json())
    finally:
        await client.aclose()

    await wait_for(lambda: plane.current.killed)
    assert 5 == plane.current.version


async def test_state_already_in_redis_is_in_force_when_start_returns(
    redis_server: RedisServer, planes: StartPlane
) -> None:
    """A proxy started while the kill switch is on never mirrors a request: start() waits for
    the first read."""
    writer = await planes(redis_server.url)
    await writer.update(Change(killed=True))

    late = await planes(redis_server.url)

    assert late.current.killed


async def test_start_without_redis_runs_on_settings_then_connects(
    tmp_path: Any, planes: StartPlane
) -> None:
    """Redis down at start: start() returns anyway (defaults in force, disconnected), and the
    plane connects once Redis appears."""
    server = RedisServer(tmp_path)
    plane = await planes(server.url, timeout=0.3)
    assert (False, False) == (plane.connected, plane.current.killed)
    assert plane.last_error is not None

    server.start()
    try:
        await wait_for(lambda: plane.connected)
        assert plane.last_sync is not None
    finally:
        server.stop()


async def test_unreadable_state_keeps_the_last_good_one(
    redis_server: RedisServer, planes: StartPlane
) -> None:
    """Garbage in the state key: the proxy keeps what it had and says why; a good write heals."""
    plane = await planes(redis_server.url, resync_interval=0.2)
    await plane.update(Change(sample=50))
    client = await raw_redis(redis_server)
    try:
        await client.set(STATE_KEY, b"{not json")
        await wait_for(lambda: plane.last_error is not None)
        assert 50.0 == plane.current.sample
        assert "unreadable" in (plane.last_error or "")
        with pytest.raises(ControlUnavailableError, match="unreadable state in Redis"):
            await plane.update(Change(killed=True))
        assert b"{not json" == await client.get(STATE_KEY)

        await client.set(STATE_KEY, orjson.dumps({"version": 9, "sample": 5}))
    finally:
        await client.aclose()
    await wait_for(lambda: plane.current.version == 9)
    assert 5.0 == plane.current.sample
    await wait_for(lambda: plane.last_error is None)


async def test_local_mode_changes_this_process_only(planes: StartPlane) -> None:
    """Without --control the switches change here, with no Redis and nothing to be away."""
    plane = await planes("", sample=80.0)

    state = await plane.update(Change(killed=True, sample=10))

    assert ("local", True, False) == (plane.mode, plane.connected, plane.degraded)
    assert (True, 10.0, 1) == (state.killed, state.sample, state.version)
    assert state is plane.current
    assert {
        "mode": "local",
        "connected": True,
        "last_error": None,
        "last_sync": None,
        "fleet_size": 1,
        "version": 1,
    } == plane.health()


async def test_fleet_size_counts_proxies_listening(
    redis_server: RedisServer, planes: StartPlane
) -> None:
    """The plane learns how many proxies listen (used to share the rate cap while Redis is away)."""
    one = await planes(redis_server.url, resync_interval=0.2)
    await planes(redis_server.url, resync_interval=0.2)
    await planes(redis_server.url, resync_interval=0.2)

    await wait_for(lambda: one.fleet_size == 3)
    assert 3 == await one.listeners()


async def test_hung_redis_is_noticed_and_never_blocks_a_shadow_call(
    redis_server: RedisServer, planes: StartPlane
) -> None:
    """Redis frozen (accepts connections, never answers): the plane reports it disconnected
    after its timeout and the rate cap decides locally, each take() bounded by the refill
    timeout. Unfrozen, the plane reconnects."""
    plane = await planes(redis_server.url, resync_interval=0.3, timeout=0.5, shadow_rps=1000.0)
    assert redis_server.process is not None
    pid = redis_server.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        took = await plane.rate_cap.take()
        assert took
        assert time.monotonic() - started < 3.0
        await wait_for(lambda: not plane.connected)
        assert [True] * 5 == [await plane.rate_cap.take() for _ in range(5)]
        assert plane.rate_cap.local_decisions > 0
    finally:
        os.kill(pid, signal.SIGCONT)
    await wait_for(lambda: plane.connected)


async def test_close_is_prompt_and_leaves_no_connection(redis_server: RedisServer) -> None:
    """Closing a plane at any moment of its sync loop ends it within its timeout, and every
    Redis connection is closed (pytest turns an unclosed one into an error)."""
    for round_ in range(25):
        plane = ControlPlane(redis_server.url, resync_interval=0.02, retry_max=0.1, timeout=1.0)
        await plane.start()
        await asyncio.sleep(0.004 * round_)
        async with asyncio.timeout(5):
            await plane.aclose()
