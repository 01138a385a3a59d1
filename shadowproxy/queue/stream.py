"""The Redis stream the exchanges travel on: the only module that speaks redis-py.

Publishers append with ``XADD … MAXLEN ~`` inside ``MULTI``, between two ``XLEN`` calls, so the
number of entries the cap trimmed is exact and attributed to the batch that caused it even with many
proxies appending at once. Workers read through a consumer group (``XREADGROUP``), acknowledge
(``XACK``) and take over entries left pending by dead consumers (``XAUTOCLAIM``).

The client does no retrying of its own: callers decide (publishers keep buffering, workers keep
their entries unacknowledged). Every Redis failure surfaces as :class:`QueueError`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

log = logging.getLogger(__name__)

DEFAULT_STREAM = "shadowproxy:exchanges"
"""The stream key proxies append to and workers read from."""


class QueueError(Exception):
    """Redis is unreachable or refused a command; the message says which."""


class GroupMissingError(QueueError):
    """The consumer group (or the stream) does not exist: Redis restarted empty or failed over to a
    replica without it. :meth:`RedisStream.ensure_group` brings it back."""


def _failure(command: str, exc: RedisError) -> QueueError:
    if isinstance(exc, ResponseError) and str(exc).startswith("NOGROUP"):
        return GroupMissingError(f"{command}: {exc}")
    return QueueError(f"{command}: {exc}")


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One entry as a consumer sees it."""

    id: str
    fields: Mapping[bytes, bytes] | None
    """The entry's fields; ``None`` when the entry was trimmed away while pending (lost)."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """The result of one ``XAUTOCLAIM`` step."""

    cursor: str
    """Where the next step starts; ``"0-0"`` once the whole pending list was scanned."""
    entries: tuple[StreamEntry, ...]
    deleted: tuple[str, ...]
    """Ids that were pending but are no longer in the stream (trimmed): Redis drops them from the
    pending list itself; they are lost."""


@dataclass(frozen=True, slots=True)
class Pending:
    """A consumer group's unacknowledged entries."""

    total: int
    by_consumer: Mapping[str, int]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id_order(entry_id: str) -> tuple[int, int]:
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)


def _entries(raw: Sequence[Any]) -> tuple[StreamEntry, ...]:
    return tuple(StreamEntry(_text(entry_id), fields or None) for entry_id, fields in raw)


class RedisStream:
    """One stream on one Redis server."""

    def __init__(self, url: str, name: str = DEFAULT_STREAM, *, timeout: float = 5.0) -> None:
        """``url`` is a ``redis://`` URL; nothing connects until the first command. Raises
        ``ValueError`` for a malformed URL."""
        self.name = name
        self._timeout = timeout
        # No retries inside the client: a caller that retries on its own schedule keeps control of
        # how long a Redis outage may hold it.
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=min(timeout, 2.0),
            retry=Retry(NoBackoff(), 0),
        )

    async def aclose(self) -> None:
        with contextlib.suppress(RedisError):
            await self._client.aclose()

    # --- publishing -------------------------------------------------------------------------------

    async def append(self, entries: Sequence[Mapping[str, bytes]], maxlen: int) -> int:
        """Append ``entries`` in order, capping the stream near ``maxlen``; return how many entries
        the cap trimmed. All or nothing (one ``MULTI``); if the connection drops while the result is
        on its way back the entries may be in the stream and a retry appends them again, which the
        workers' idempotent store writes absorb."""
        if not entries:
            return 0
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.xlen(self.name)
                for fields in entries:
                    values: dict[Any, Any] = dict(fields)
                    pipe.xadd(self.name, values, maxlen=maxlen, approximate=True)
                pipe.xlen(self.name)
                results = await pipe.execute()
        except RedisError as exc:
            raise QueueError(f"appending to {self.name}: {exc}") from None
        before, after = int(results[0]), int(results[-1])
        return max(0, before + len(entries) - after)

    async def length(self) -> int:
        try:
            return int(await self._client.xlen(self.name))
        except RedisError as exc:
            raise QueueError(f"XLEN {self.name}: {exc}") from None

    # --- consuming --------------------------------------------------------------------------------

    async def ensure_group(self, group: str) -> bool:
        """Create the consumer group (and the stream) unless it exists; ``True`` when created.

        A new group starts at the beginning of the stream, so entries published before the first
        worker ever ran are compared too."""
        try:
            await self._client.xgroup_create(self.name, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" in str(exc):
                return False
            raise QueueError(f"XGROUP CREATE {self.name} {group}: {exc}") from None
        except RedisError as exc:
            raise QueueError(f"XGROUP CREATE {self.name} {group}: {exc}") from None
        return True

    async def read(
        self, group: str, consumer: str, *, count: int, block: float, own_pending: bool = False
    ) -> tuple[StreamEntry, ...]:
        """Up to ``count`` new entries for ``consumer``, waiting up to ``block`` seconds for one.

        With ``own_pending`` it returns instead the entries already delivered to this consumer and
        not yet acknowledged (a worker restarted under the same name), without waiting."""
        start = "0" if own_pending else ">"
        try:
            reply: list[Any] = await self._client.xreadgroup(  # type: ignore[assignment]
                group,
                consumer,
                {self.name: start},
                count=count,
                block=None if own_pending else max(1, int(block * 1000)),
            )
        except RedisError as exc:
            raise _failure(f"XREADGROUP {self.name} {group}", exc) from None
        if not reply:
            return ()
        entries: list[StreamEntry] = []
        for _name, raw in reply:  # [[stream, [(id, fields), ...]]]
            entries.extend(_entries(raw))
        return tuple(entries)

    async def claim(
        self, group: str, consumer: str, *, min_idle: float, count: int, cursor: str = "0-0"
    ) -> Claimed:
        """Take over up to ``count`` entries pending longer than ``min_idle`` seconds on any
        consumer (a dead worker's), scanning the pending list from ``cursor``."""
        try:
            reply = await self._client.xautoclaim(
                self.name, group, consumer, int(min_idle * 1000), cursor, count=count
            )
        except RedisError as exc:
            raise _failure(f"XAUTOCLAIM {self.name} {group}", exc) from None
        next_cursor = _text(reply[0])
        deleted = tuple(_text(i) for i in reply[2]) if len(reply) > 2 else ()
        return Claimed(next_cursor, _entries(reply[1]), deleted)

    async def reclaim(
        self, group: str, consumer: str, ids: Sequence[str]
    ) -> tuple[StreamEntry, ...]:
        """Claim ``ids`` for ``consumer`` whatever their idle time, counting a delivery each: a
        worker restarted under its old name takes its own pending entries back this way, so an
        entry that crashes it every time is seen to be delivered again and again."""
        if not ids:
            return ()
        try:
            reply = await self._client.xclaim(self.name, group, consumer, 0, list(ids))
        except RedisError as exc:
            raise _failure(f"XCLAIM {self.name} {group}", exc) from None
        return _entries(reply)

    async def deliveries(self, group: str, consumer: str, ids: Sequence[str]) -> dict[str, int]:
        """How many times each of ``ids``, pending on ``consumer``, has been delivered (claims
        included); ids not pending there are absent."""
        if not ids:
            return {}
        wanted = set(ids)
        low, high = min(ids, key=_id_order), max(ids, key=_id_order)
        try:
            reply = await self._client.xpending_range(
                self.name,
                group,
                min=low,
                max=high,
                count=len(ids) * 2 + 10,
                consumername=consumer,
            )
        except RedisError as exc:
            raise _failure(f"XPENDING {self.name} {group}", exc) from None
        found = {_text(row["message_id"]): int(row["times_delivered"]) for row in reply}
        return {entry_id: n for entry_id, n in found.items() if entry_id in wanted}

    async def ack(self, group: str, ids: Sequence[str]) -> int:
        """Acknowledge ``ids``; returns how many were pending."""
        if not ids:
            return 0
        try:
            return int(await self._client.xack(self.name, group, *ids))
        except RedisError as exc:
            raise QueueError(f"XACK {self.name} {group}: {exc}") from None

    async def forget_idle_consumers(self, group: str, *, idle: float, keep: str) -> tuple[str, ...]:
        """Remove consumers that have nothing pending and have not read for ``idle`` seconds (dead
        workers' names, which would otherwise pile up with every restart), except ``keep``."""
        try:
            consumers = await self._client.xinfo_consumers(self.name, group)
            gone: list[str] = []
            for consumer in consumers:
                name = _text(consumer["name"])
                if name == keep or int(consumer["pending"]) or consumer["idle"] < idle * 1000:
                    continue
                # DELCONSUMER drops the consumer's pending entries with it. Only a consumer silent
                # for `idle` that reads in this very round trip can have some; it still holds them
                # in memory and stores them, only a crash of it right then would lose them.
                dropped = int(await self._client.xgroup_delconsumer(self.name, group, name))
                if dropped:
                    log.warning(
                        "consumer %s woke while being removed; %d of its entries are no "
                        "longer pending",
                        name,
                        dropped,
                    )
                gone.append(name)
        except RedisError as exc:
            raise _failure(f"XINFO CONSUMERS {self.name} {group}", exc) from None
        return tuple(gone)

    async def pending(self, group: str) -> Pending:
        """How many entries the group has delivered and not yet had acknowledged, per consumer."""
        try:
            reply = await self._client.xpending(self.name, group)
        except RedisError as exc:
            raise _failure(f"XPENDING {self.name} {group}", exc) from None
        by_consumer = {_text(c["name"]): int(c["pending"]) for c in reply.get("consumers") or ()}
        return Pending(int(reply.get("pending") or 0), by_consumer)
