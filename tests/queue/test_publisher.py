"""The proxy-side publisher against a real Redis: batches, the cap, outages and a full buffer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from shadowproxy.metrics import Metrics
from shadowproxy.queue import RedisStream, StreamPublisher, decode_exchange
from shadowproxy.rules.ruleset import DEFAULT_RULES
from tests.factories import make_response
from tests.polling import eventually
from tests.queue.traffic import exchanges
from tests.servers import RedisServer

STREAM = "test:exchanges"


@pytest.fixture
async def reader(redis_server: RedisServer) -> AsyncIterator[RedisStream]:
    stream = RedisStream(redis_server.url, STREAM)
    yield stream
    await stream.aclose()


async def test_published_exchanges_arrive_in_order_and_intact(
    redis_server: RedisServer, reader: RedisStream
) -> None:
    """Every submitted exchange is one entry, in submission order, with the proxy's version."""
    sent = exchanges(25)
    publisher = StreamPublisher(redis_server.url, stream=STREAM, batch=10)
    await publisher.start()
    assert all(publisher.submit(exchange, DEFAULT_RULES, "r42") for exchange in sent)
    assert await publisher.drain(10)
    assert 0 == await publisher.aclose()
    await reader.ensure_group("g")
    entries = await reader.read("g", "c", count=100, block=0.1)
    decoded = [decode_exchange(entry.fields or {}) for entry in entries]
    assert sent == [item.exchange for item in decoded]
    assert {"r42"} == {item.ruleset_version for item in decoded}
    stats = publisher.stats()
    assert (25, 0, 0, True, None) == (
        stats.published,
        stats.dropped,
        stats.buffered,
        stats.connected,
        stats.last_error,
    )


async def test_length_cap_trims_and_counts(redis_server: RedisServer, reader: RedisStream) -> None:
    """With a small cap the stream stays bounded and the trims equal the entries removed."""
    publisher = StreamPublisher(redis_server.url, stream=STREAM, maxlen=100, batch=50)
    await publisher.start()
    for exchange in exchanges(600):
        publisher.submit(exchange, DEFAULT_RULES, "v")
    assert await publisher.drain(20)
    await publisher.aclose()
    length = await reader.length()
    stats = publisher.stats()
    assert length < 600
    assert (600, 600 - length) == (stats.published, stats.trimmed)


async def test_buffers_while_redis_is_down_and_delivers_when_back(
    redis_server: RedisServer, reader: RedisStream
) -> None:
    """Redis away: exchanges wait in the buffer and the publisher says so; Redis back: every
    buffered exchange is delivered once."""
    redis_server.stop()
    publisher = StreamPublisher(redis_server.url, stream=STREAM, retry_max=0.2)
    await publisher.start()
    sent = exchanges(40)
    for exchange in sent[:20]:
        assert publisher.submit(exchange, DEFAULT_RULES, "v")

    async def reported_down() -> bool:
        return not publisher.stats().connected

    await eventually(reported_down)
    for exchange in sent[20:]:
        assert publisher.submit(exchange, DEFAULT_RULES, "v")
    stats = publisher.stats()
    assert (40, 0) == (stats.buffered, stats.published)
    assert stats.last_error
    redis_server.start()
    assert await publisher.drain(20)
    await publisher.aclose()
    await reader.ensure_group("g")
    entries = await reader.read("g", "c", count=100, block=0.1)
    assert sent == [decode_exchange(entry.fields or {}).exchange for entry in entries]
    stats = publisher.stats()
    assert (40, 0, True, None) == (
        stats.published,
        stats.buffered,
        stats.connected,
        stats.last_error,
    )


async def test_full_buffer_refuses_and_counts(redis_server: RedisServer) -> None:
    """With Redis away and the buffer full, submit says no at once and the drop is counted,
    per endpoint, as queue_full in the metrics; aclose reports what it could not publish."""
    redis_server.stop()
    metrics = Metrics()
    publisher = StreamPublisher(
        redis_server.url, stream=STREAM, buffer=5, metrics=metrics, retry_max=0.2
    )
    await publisher.start()
    accepted = [publisher.submit(exchange, DEFAULT_RULES, "v") for exchange in exchanges(8)]
    assert [True] * 5 + [False] * 3 == accepted
    text = metrics.render().decode()
    assert (
        'shadowproxy_mirror_skips_total{endpoint="GET /api/v1/title",reason="queue_full"} 3.0'
        in text
    )
    assert "shadowproxy_stream_buffered_exchanges 5.0" in text
    assert 5 == await publisher.aclose(timeout=0.2)
    assert (8, 0) == (publisher.stats().dropped, publisher.stats().published)


async def test_submit_never_waits_for_redis(redis_server: RedisServer) -> None:
    """submit() is synchronous: it returns before the publisher even started."""
    publisher = StreamPublisher(redis_server.url, stream=STREAM)
    assert publisher.submit(exchanges(1)[0], DEFAULT_RULES, "v")
    assert 1 == publisher.depth
    await publisher.start()
    assert await publisher.drain(10)
    await publisher.aclose()


async def test_byte_budget_refuses_large_bodies_first(redis_server: RedisServer) -> None:
    """With a byte budget, an exchange whose bodies would overflow it is refused even though the
    count allows it, and a small one still fits."""
    redis_server.stop()
    publisher = StreamPublisher(
        redis_server.url, stream=STREAM, buffer=100, buffer_bytes=64 * 1024, retry_max=0.2
    )
    await publisher.start()
    small, large = exchanges(2)
    large = replace(large, primary=make_response(body=b"x" * 70_000))
    assert (True, False) == (
        publisher.submit(small, DEFAULT_RULES, "v"),
        publisher.submit(large, DEFAULT_RULES, "v"),
    )
    assert (1, small.body_bytes, 1) == (
        publisher.stats().buffered,
        publisher.stats().buffered_bytes,
        publisher.stats().dropped,
    )
    await publisher.aclose(timeout=0.1)


async def test_large_bodies_are_sent_in_smaller_batches(
    redis_server: RedisServer, reader: RedisStream
) -> None:
    """A batch is capped in bytes as well as in count: five 3 MB exchanges (4 MB encoded) go in
    three appends of at most two, and arrive intact."""
    big = [replace(x, primary=make_response(body=bytes(3 * 1024 * 1024))) for x in exchanges(5)]
    publisher = StreamPublisher(redis_server.url, stream=STREAM, batch=200)
    await publisher.start()
    for exchange in big:
        publisher.submit(exchange, DEFAULT_RULES, "v")
    assert await publisher.drain(30)
    await publisher.aclose()
    assert (5, 3, 5) == (
        publisher.stats().published,
        publisher.stats().batches,
        await reader.length(),
    )
    await reader.ensure_group("g")
    entries = await reader.read("g", "c", count=10, block=0.1)
    assert big == [decode_exchange(entry.fields or {}).exchange for entry in entries]
