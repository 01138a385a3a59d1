"""The proxy's side of the Redis Streams queue: exchanges out to workers, never a wait for Redis.

::

    Mirror ──submit()──► bounded buffer ──► sender task ──► XADD … MAXLEN ~ (one MULTI per batch)
                          full: dropped       Redis down: the batch stays buffered, retried with
                          and counted         backoff; new exchanges keep buffering up to the cap

:meth:`StreamPublisher.submit` has the same shape as the local pipeline's ``submit``, so the mirror
delivers to either. It only appends to a deque: encoding and network I/O happen in the sender
task. An exchange leaves the buffer only once Redis confirmed the append, so an outage loses nothing
until the buffer is full, and what is then refused is counted (``queue_full``), never silent.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

from shadowproxy.budget import Budget
from shadowproxy.metrics import Metrics
from shadowproxy.model import Exchange, SkipReason
from shadowproxy.queue.codec import QueueCodecError, encode_exchange
from shadowproxy.queue.stream import DEFAULT_STREAM, QueueError, RedisStream
from shadowproxy.rules import EndpointRules
from shadowproxy.tasks import TaskSet

log = logging.getLogger(__name__)

BATCH_BYTES = 8 * 1024 * 1024
"""A batch stops growing past this many encoded bytes (one entry at least): large bodies must not
turn one ``MULTI`` into hundreds of megabytes held twice, encoded and in the socket buffer."""


@dataclass(frozen=True, slots=True)
class PublisherStats:
    """A snapshot of the publisher, for metrics and health."""

    buffered: int
    """Exchanges waiting in memory to be appended (including the batch being sent)."""
    buffered_bytes: int
    """Body bytes those exchanges hold."""
    published: int
    """Exchanges Redis confirmed."""
    batches: int
    """Appends (one ``MULTI`` each) Redis confirmed."""
    dropped: int
    """Exchanges refused because the buffer was full, unencodable, or left over at shutdown."""
    trimmed: int
    """Stream entries the length cap removed when this publisher appended (any proxy's entries:
    summed over the fleet, it is the stream's total)."""
    connected: bool
    """False from a failed append until the next successful one."""
    last_error: str | None
    """The last Redis error, ``None`` once an append succeeded after it."""


class StreamPublisher:
    """Publishes exchanges to a Redis stream for ``shadowproxy worker`` processes."""

    def __init__(
        self,
        url: str,
        *,
        stream: str = DEFAULT_STREAM,
        maxlen: int = 100_000,
        buffer: int = 10_000,
        buffer_bytes: int = 0,
        batch: int = 200,
        metrics: Metrics | None = None,
        retry_max: float = 2.0,
    ) -> None:
        """``url``: ``redis://…``; ``maxlen``: the stream's approximate cap; ``buffer``: exchanges
        held in memory while Redis is slow or away;
        ``buffer_bytes``: cap on the body bytes those exchanges hold (0: none), so an outage with
        large bodies cannot eat the proxy's memory; ``batch``: entries per ``MULTI``;
        ``retry_max``: the longest pause between attempts while Redis is down. Raises
        ``ValueError`` for a malformed URL; connects lazily (Redis may be down at start-up)."""
        self._stream = RedisStream(url, stream)
        self._maxlen = maxlen
        self._budget = Budget(buffer, buffer_bytes)
        self._batch = batch
        self._metrics = metrics
        self._retry_max = retry_max
        self._buffer: deque[tuple[Exchange, str, int]] = deque()
        self._wake = asyncio.Event()
        self._tasks = TaskSet("stream-publisher")
        self._published = 0
        self._batches = 0
        self._dropped = 0
        self._trimmed = 0
        self._connected = True
        self._last_error: str | None = None
        if metrics is not None:
            self._register(metrics)

    @property
    def depth(self) -> int:
        """Exchanges waiting to be published."""
        return len(self._buffer)

    def has_room(self, pending: int, pending_bytes: int) -> bool:
        """See :meth:`Budget.has_room`."""
        return self._budget.has_room(pending, pending_bytes)

    def submit(self, exchange: Exchange, rules: EndpointRules, ruleset_version: str) -> bool:
        """Buffer an exchange for publishing; ``False`` (and counted) when the buffer is full, by
        count or by body bytes.

        ``rules`` is not sent: workers compare under their own rule file, resolved from the request.
        """
        del rules
        size = exchange.body_bytes
        if not self._budget.take(size):
            self._dropped += 1
            if self._metrics is not None:
                self._metrics.skip(exchange.endpoint, SkipReason.QUEUE_FULL)
            return False
        self._buffer.append((exchange, ruleset_version, size))
        self._wake.set()
        return True

    async def start(self) -> None:
        """Start the sender task. Redis need not be up: the first append connects."""
        if not len(self._tasks):
            self._tasks.spawn(self._send(), name="stream-publisher")

    async def _send(self) -> None:
        pause = 0.05
        encoded: list[dict[str, bytes]] = []
        while True:
            if not self._buffer:
                self._wake.clear()
                await self._wake.wait()
                continue
            if not encoded:
                encoded = self._encode_next()
                if not encoded:
                    continue
            try:
                trimmed = await self._stream.append(encoded, self._maxlen)
            except QueueError as exc:
                if self._connected or self._last_error != str(exc):
                    log.warning(
                        "queue: Redis append failed, keeping %d buffered: %s",
                        len(self._buffer),
                        exc,
                    )
                self._connected = False
                self._last_error = str(exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, self._retry_max)
                continue
            if not self._connected:
                log.info("queue: Redis is back, publishing the %d buffered", len(self._buffer))
            for _ in encoded:
                self._budget.release(self._buffer.popleft()[2])
            self._published += len(encoded)
            self._batches += 1
            self._trimmed += trimmed
            self._connected = True
            self._last_error = None
            pause = 0.05
            encoded = []

    def _encode_next(self) -> list[dict[str, bytes]]:
        """Encode the next batch from the head of the buffer, up to ``batch`` entries or
        :data:`BATCH_BYTES`; unencodable exchanges are dropped (counted) so one bad exchange cannot
        block the rest."""
        encoded: list[dict[str, bytes]] = []
        encoded_bytes = 0
        index = 0
        while (
            index < len(self._buffer) and len(encoded) < self._batch and encoded_bytes < BATCH_BYTES
        ):
            exchange, version, size = self._buffer[index]
            try:
                fields = encode_exchange(exchange, version)
            except QueueCodecError as exc:
                log.error("queue: dropping exchange: %s", exc)
                del self._buffer[index]
                self._budget.release(size)
                self._dropped += 1
                continue
            encoded.append(fields)
            encoded_bytes += len(fields["exchange"])
            index += 1
        return encoded

    async def drain(self, timeout: float) -> bool:
        """Wait until every buffered exchange is published; ``False`` on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._buffer:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def aclose(self, timeout: float = 5.0) -> int:
        """Publish what is buffered within ``timeout``, then stop; return how many exchanges were
        not published (they are counted as dropped)."""
        await self.drain(timeout)
        await self._tasks.aclose()
        left = len(self._buffer)
        if left:
            self._dropped += left
            self._buffer.clear()
            self._budget.clear()
            log.warning("shutdown: %d exchanges were not published to the queue", left)
        await self._stream.aclose()
        return left

    def stats(self) -> PublisherStats:
        return PublisherStats(
            buffered=len(self._buffer),
            buffered_bytes=self._budget.held_bytes,
            published=self._published,
            batches=self._batches,
            dropped=self._dropped,
            trimmed=self._trimmed,
            connected=self._connected,
            last_error=self._last_error,
        )

    def _register(self, metrics: Metrics) -> None:
        metrics.gauge(
            "stream_buffered_exchanges",
            "Exchanges buffered for the Redis stream.",
            lambda: float(self.depth),
        )
        metrics.gauge(
            "stream_buffered_bytes",
            "Body bytes held by exchanges buffered for the Redis stream.",
            lambda: float(self._budget.held_bytes),
        )
        metrics.gauge(
            "stream_up",
            "1 when the last append to the Redis stream succeeded.",
            lambda: float(self._connected),
        )
        metrics.counter(
            "stream_published_exchanges",
            "Exchanges appended to the Redis stream.",
            lambda: float(self._published),
        )
        metrics.counter(
            "stream_dropped_exchanges",
            "Exchanges not published: buffer full, unencodable or left at shutdown.",
            lambda: float(self._dropped),
        )
        metrics.counter(
            "stream_trimmed_entries",
            "Stream entries removed by the length cap.",
            lambda: float(self._trimmed),
        )
