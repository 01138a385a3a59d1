"""The Redis Streams comparison queue: proxies publish exchanges, ``shadowproxy worker`` compares.

::

    proxy ─► StreamPublisher ─► Redis stream (capped) ─► consumer group ─► worker(s) ─► store
              (codec.py)          (stream.py)                              (shadowproxy.worker)

Delivery is at least once: a worker acknowledges an entry only after the store write succeeded,
and entries a dead worker left pending are claimed by another. Store writes are idempotent by
exchange id, so an entry processed twice is stored and counted once. redis-py is used only in
:mod:`.stream`.
"""

from shadowproxy.queue.codec import (
    FORMAT,
    QueueCodecError,
    QueuedExchange,
    decode_exchange,
    encode_exchange,
)
from shadowproxy.queue.publisher import PublisherStats, StreamPublisher
from shadowproxy.queue.stream import (
    DEFAULT_STREAM,
    GroupMissingError,
    QueueError,
    RedisStream,
    StreamEntry,
)

__all__ = [
    "DEFAULT_STREAM",
    "FORMAT",
    "GroupMissingError",
    "PublisherStats",
    "QueueCodecError",
    "QueueError",
    "QueuedExchange",
    "RedisStream",
    "StreamEntry",
    "StreamPublisher",
    "decode_exchange",
    "encode_exchange",
]
