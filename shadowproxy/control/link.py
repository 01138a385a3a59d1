"""The Redis side of the control plane: the only module of the control plane that knows redis-py.

Keys (under a namespace, ``shadowproxy:control`` by default):

- ``<ns>:switches`` — a string: the JSON of the current switches;
- ``<ns>:changes`` — the pub/sub channel; every write publishes the whole new state on it;
- ``<ns>:shadow-bucket`` — a hash (``tokens``, ``ts``): the fleet's shadow-rate token bucket.

Every redis-py failure (refused, reset, timeout, a server error) surfaces as :class:`LinkError`, so
callers handle one exception. Commands are not retried here: the callers have their own policies
(the plane reconnects with backoff, the rate cap falls back to a local bucket).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, WatchError

DEFAULT_NAMESPACE = "shadowproxy:control"

# Refill by elapsed time (server clock, so proxies' clocks need not agree), cap at the burst, hand
# out up to ARGV[3] whole tokens. The key expires once it would be full again anyway.
_LEASE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(s[1])
local ts = tonumber(s[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = tokens + (now - ts) * rate
end
if tokens > burst then
  tokens = burst
end
local got = math.floor(math.min(want, tokens))
if got < 0 then
  got = 0
end
tokens = tokens - got
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return got
"""

# Write the state only if none is stored (Redis restarted empty), and tell everyone.
_SEED = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('PUBLISH', KEYS[2], ARGV[1])
  return 1
end
return 0
"""


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


class LinkError(Exception):
    """Redis could not be reached or refused the command; the message says which and why."""


@contextlib.contextmanager
def _errors(what: str) -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError, TimeoutError) as exc:
        raise LinkError(f"{what}: {exc or type(exc).__name__}") from exc


class Subscription:
    """The change channel, subscribed; read with :meth:`next`."""

    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    async def next(self, timeout: float) -> bytes | None:
        """The next published state, or ``None`` when nothing came within ``timeout`` seconds."""
        with _errors("redis subscription"):
            message = await self._pubsub.get_message(
                ignore_subscribe_messages=True, timeout=timeout
            )
        if message is None or message.get("type") != "message":
            return None
        data = message["data"]
        return data if isinstance(data, bytes) else str(data).encode()


class RedisLink:
    """One Redis connection pool and the control plane's commands on it."""

    def __init__(
        self, url: str, *, namespace: str = DEFAULT_NAMESPACE, timeout: float = 2.0
    ) -> None:
        self.url = url
        self.state_key = f"{namespace}:switches"
        self.channel = f"{namespace}:changes"
        self.bucket_key = f"{namespace}:shadow-bucket"
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._lease = self._client.register_script(_LEASE)
        self._seed = self._client.register_script(_SEED)

    async def read(self) -> bytes | None:
        """The stored state's JSON, or ``None`` when none is stored."""
        with _errors("redis GET"):
            raw = await self._client.get(self.state_key)
        return None if raw is None else _as_bytes(raw)

    async def update(self, transform: Callable[[bytes | None], bytes], attempts: int = 50) -> bytes:
        """Replace the state by ``transform(stored)`` atomically, publish it, return it.

        Optimistic (WATCH/MULTI): when another writer got in first, wait a random moment (growing
        with each try, so writers spread out) and transform the new state. Exceptions from
        ``transform`` propagate unchanged (nothing is written).
        """
        with _errors("redis update"):
            async with self._client.pipeline(transaction=True) as pipe:
                for attempt in range(attempts):
                    try:
                        await pipe.watch(self.state_key)
                        stored = await pipe.get(self.state_key)
                        new = transform(stored if stored is None else _as_bytes(stored))
                        pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                        pipe.set(self.state_key, new)
                        pipe.publish(self.channel, new)
                        await pipe.execute()
                    except WatchError:
                        await asyncio.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 6)))
                        continue
                    return new
        raise LinkError(f"redis update: {attempts} concurrent writers in a row, gave up")

    async def seed(self, state: bytes) -> bool:
        """Store ``state`` (and publish it) only if no state is stored; ``True`` if it was."""
        with _errors("redis seed"):
            done = await self._seed(keys=[self.state_key, self.channel], args=[state])
        return bool(done)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        """Subscribe to the change channel for the duration of the block."""
        pubsub = self._client.pubsub()
        try:
            with _errors("redis SUBSCRIBE"):
                await pubsub.subscribe(self.channel)
            yield Subscription(pubsub)
        finally:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py

    async def lease(self, rate: float, burst: float, want: int) -> int:
        """Take up to ``want`` tokens from the fleet bucket; return how many were granted."""
        with _errors("redis token bucket"):
            got = await self._lease(keys=[self.bucket_key], args=[rate, burst, want])
        return int(got)

    async def listeners(self) -> int:
        """How many connections are subscribed to the change channel (the proxies listening)."""
        with _errors("redis PUBSUB NUMSUB"):
            counts = await self._client.pubsub_numsub(self.channel)
        return int(counts[0][1]) if counts else 0

    async def aclose(self) -> None:
        """Close every connection, in use or idle (safe to call again; a later command reopens)."""
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await self._client.aclose()
