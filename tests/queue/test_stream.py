"""The Redis stream adapter against a real redis-server: append, cap, groups, claim, pending."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from shadowproxy.queue import GroupMissingError, QueueError, RedisStream, encode_exchange
from tests.queue.traffic import exchanges
from tests.servers import RedisServer


@pytest.fixture
async def stream(redis_server: RedisServer) -> AsyncIterator[RedisStream]:
    stream = RedisStream(redis_server.url, "test:exchanges")
    yield stream
    await stream.aclose()


def _entries(count: int) -> list[dict[str, bytes]]:
    return [encode_exchange(exchange, "v") for exchange in exchanges(count)]


async def test_append_within_the_cap_trims_nothing(stream: RedisStream) -> None:
    """Entries under the cap are all kept and nothing is reported trimmed."""
    assert 0 == await stream.append(_entries(30), maxlen=1000)
    assert 30 == await stream.length()


async def test_trimmed_count_is_what_the_cap_removed(stream: RedisStream) -> None:
    """Past the cap, the reported trims add up to exactly the entries gone from the stream."""
    batch = _entries(50)
    trimmed = 0
    for _ in range(12):
        trimmed += await stream.append(batch, maxlen=100)
    length = await stream.length()
    assert length < 600
    assert 600 - length == trimmed


async def test_group_reads_acks_and_reports_pending(stream: RedisStream) -> None:
    """Entries read in a group are pending on the reader until acknowledged."""
    assert await stream.ensure_group("workers") is True
    assert await stream.ensure_group("workers") is False
    await stream.append(_entries(5), maxlen=1000)
    read = await stream.read("workers", "w1", count=3, block=0.1)
    assert 3 == len(read)
    assert {"w1": 3} == dict((await stream.pending("workers")).by_consumer)
    assert 3 == await stream.ack("workers", [entry.id for entry in read])
    assert 0 == (await stream.pending("workers")).total


async def test_group_created_late_still_sees_earlier_entries(stream: RedisStream) -> None:
    """A group created after proxies started publishing begins at the stream's start."""
    await stream.append(_entries(4), maxlen=1000)
    await stream.ensure_group("workers")
    assert 4 == len(await stream.read("workers", "w1", count=10, block=0.1))


async def test_own_pending_are_read_again_after_a_restart(stream: RedisStream) -> None:
    """A consumer reading its own pending list gets back what it read and never acknowledged."""
    await stream.ensure_group("workers")
    await stream.append(_entries(3), maxlen=1000)
    first = await stream.read("workers", "w1", count=10, block=0.1)
    again = await stream.read("workers", "w1", count=10, block=0, own_pending=True)
    assert [entry.id for entry in first] == [entry.id for entry in again]
    assert first == again


async def test_claim_takes_over_a_dead_consumers_entries(stream: RedisStream) -> None:
    """Entries idle on another consumer move to the claimer, fields intact."""
    await stream.ensure_group("workers")
    await stream.append(_entries(4), maxlen=1000)
    read = await stream.read("workers", "dead", count=10, block=0.1)
    claimed = await stream.claim("workers", "alive", min_idle=0, count=10)
    assert read == claimed.entries
    assert "0-0" == claimed.cursor
    assert {"alive": 4} == dict((await stream.pending("workers")).by_consumer)


async def test_claim_reports_pending_entries_the_cap_trimmed(stream: RedisStream) -> None:
    """A pending entry trimmed from the stream is reported as deleted (lost), not as an entry."""
    await stream.ensure_group("workers")
    await stream.append(_entries(10), maxlen=1000)
    read = await stream.read("workers", "dead", count=10, block=0.1)
    for _ in range(5):
        await stream.append(_entries(100), maxlen=100)
    claimed = await stream.claim("workers", "alive", min_idle=0, count=100)
    assert [entry.id for entry in read] == list(claimed.deleted)
    assert () == claimed.entries


async def test_redis_down_is_a_queue_error(redis_server: RedisServer) -> None:
    """Every call against a stopped Redis raises QueueError (no hang, no redis-py exception)."""
    stream = RedisStream(redis_server.url, "test:exchanges", timeout=1.0)
    redis_server.stop()
    try:
        with pytest.raises(QueueError):
            await stream.append(_entries(1), maxlen=10)
        with pytest.raises(QueueError):
            await stream.read("workers", "w1", count=1, block=0.1)
        with pytest.raises(QueueError):
            await stream.ensure_group("workers")
    finally:
        await stream.aclose()


async def test_a_missing_group_is_its_own_error(stream: RedisStream) -> None:
    """Reading from a group Redis does not have (it restarted empty) raises GroupMissingError, so
    a worker knows to create the group again rather than wait."""
    with pytest.raises(GroupMissingError):
        await stream.read("workers", "w1", count=1, block=0.1)
    await stream.ensure_group("workers")
    assert () == await stream.read("workers", "w1", count=1, block=0.1)


async def test_deliveries_count_every_take_over(stream: RedisStream) -> None:
    """Each read and each claim of a pending entry adds one delivery."""
    await stream.ensure_group("workers")
    await stream.append(_entries(3), maxlen=1000)
    read = await stream.read("workers", "a", count=3, block=0.1)
    await stream.claim("workers", "b", min_idle=0, count=1)
    await stream.claim("workers", "c", min_idle=0, count=1)
    ids = [entry.id for entry in read]
    assert {ids[0]: 3} == await stream.deliveries("workers", "c", ids)
    assert {ids[1]: 1, ids[2]: 1} == await stream.deliveries("workers", "a", ids)


async def test_only_silent_consumers_with_nothing_pending_are_forgotten(
    stream: RedisStream,
) -> None:
    """A consumer that acknowledged everything and went silent is removed; one holding entries,
    and the caller itself, stay."""
    await stream.ensure_group("workers")
    await stream.append(_entries(3), maxlen=1000)
    done = await stream.read("workers", "finished", count=1, block=0.1)
    await stream.ack("workers", [entry.id for entry in done])
    await stream.read("workers", "holding", count=1, block=0.1)
    await stream.read("workers", "me", count=1, block=0.1)
    assert () == await stream.forget_idle_consumers("workers", idle=3600, keep="me")
    await asyncio.sleep(0.15)
    assert ("finished",) == await stream.forget_idle_consumers("workers", idle=0.1, keep="me")
    assert {"holding": 1, "me": 1} == dict((await stream.pending("workers")).by_consumer)
