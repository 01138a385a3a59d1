"""The cap on requests per second sent to the shadow: a token bucket shared by the fleet in Redis.

:meth:`ShadowRateCap.take` runs in the shadow-call task, never on the client's path. To avoid a
Redis round trip per request it leases tokens in small batches (a tenth of a second's worth, at
least one) and serves from the lease; one lease request is in flight at a time, and every caller
waiting meanwhile shares its result. When a lease comes back short (the fleet is at its cap), the
next one waits until the shortfall has had time to refill, so Redis sees about ten leases per
second per proxy however heavy the traffic. Leased tokens unused after ``lease_ttl`` are dropped,
so a proxy cannot hoard a burst and spend it later.

Without Redis (local mode, Redis down, or a lease that fails or takes too long) a local bucket at
``rate / fleet size`` serves instead, where the fleet size is the number of proxies last seen
listening on the change channel (1 when never seen): the fleet as a whole stays near the cap while
Redis is away, and comparisons do not stop.

The bound: over any window of T seconds the fleet bucket grants at most ``rate * T + burst``, with
``burst = rate * burst_seconds`` (at least one token).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from shadowproxy.control.link import LinkError, RedisLink


class LocalBucket:
    """A token bucket in this process: refill by elapsed time, take one."""

    def __init__(self) -> None:
        self._tokens: float | None = None
        self._at = 0.0

    def take(self, rate: float, burst: float, now: float) -> bool:
        """Take one token at ``rate`` per second, holding at most ``burst``; ``False`` if none."""
        if self._tokens is None:
            self._tokens, self._at = burst, now
        elapsed = max(0.0, now - self._at)
        self._tokens = min(burst, self._tokens + elapsed * rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def burst_for(rate: float, burst_seconds: float) -> float:
    """Tokens a bucket holds at most: ``burst_seconds`` worth, and at least one."""
    return max(1.0, rate * burst_seconds)


class ShadowRateCap:
    """``await take()`` before each shadow call: ``True`` to call, ``False`` to skip it."""

    def __init__(
        self,
        *,
        rate: Callable[[], float],
        link: RedisLink | None = None,
        remote_ok: Callable[[], bool] = lambda: True,
        fleet_size: Callable[[], int] = lambda: 1,
        burst_seconds: float = 1.0,
        lease_fraction: float = 0.1,
        lease_ttl: float = 1.0,
        refill_timeout: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._link = link
        self._remote_ok = remote_ok
        self._fleet_size = fleet_size
        self.burst_seconds = burst_seconds
        self.lease_fraction = lease_fraction
        self.lease_ttl = lease_ttl
        self.refill_timeout = refill_timeout
        self._clock = clock
        self._local = LocalBucket()
        self._lease = 0
        self._lease_rate = 0.0
        self._lease_until = 0.0
        self._starved_until = 0.0
        self._remote_down_until = 0.0
        self._refill: asyncio.Future[int | None] | None = None
        self.granted = 0
        """Shadow calls allowed (all sources)."""
        self.denied = 0
        """Shadow calls refused: the cap was reached."""
        self.local_decisions = 0
        """Decisions made by the local fallback bucket (no Redis, or Redis failing)."""
        self.leases = 0
        """Lease requests answered by Redis."""
        self.lease_errors = 0
        """Lease requests that failed or timed out (then the local bucket decided)."""

    @property
    def rate(self) -> float:
        """The cap now in force, in requests per second (0 = none)."""
        return self._rate()

    async def take(self) -> bool:
        """One token for one shadow call. No I/O when the cap is 0 or the lease has tokens."""
        rate = self._rate()
        if rate <= 0:
            return True
        if rate != self._lease_rate:
            # Leased at another rate: a cap just lowered must not be outrun by an old lease.
            self._lease, self._lease_rate = 0, rate
        now = self._clock()
        if self._spend_lease(now):
            return True
        if self._link is None or not self._remote_ok() or now < self._remote_down_until:
            return self._take_local(rate, now)
        if now < self._starved_until:
            return self._deny()
        got = await self._shared_refill(rate)
        if got is None:
            return self._take_local(rate, self._clock())
        return True if self._spend_lease(self._clock()) else self._deny()

    def _spend_lease(self, now: float) -> bool:
        if self._lease > 0 and now < self._lease_until:
            self._lease -= 1
            self.granted += 1
            return True
        return False

    def _deny(self) -> bool:
        self.denied += 1
        return False

    def _take_local(self, rate: float, now: float) -> bool:
        self.local_decisions += 1
        share = rate / max(1, self._fleet_size())
        if self._local.take(share, burst_for(share, self.burst_seconds), now):
            self.granted += 1
            return True
        return self._deny()

    async def _shared_refill(self, rate: float) -> int | None:
        """Lease tokens from Redis; concurrent callers wait for the one request in flight."""
        if self._refill is not None:
            return await asyncio.shield(self._refill)
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._refill = future
        got: int | None = None
        try:
            got = await self._lease_from_redis(rate)
        finally:
            self._refill = None
            future.set_result(got)
        return got

    async def _lease_from_redis(self, rate: float) -> int | None:
        assert self._link is not None
        want = max(1, int(rate * self.lease_fraction))
        burst = burst_for(rate, self.burst_seconds)
        try:
            async with asyncio.timeout(self.refill_timeout):
                got = await self._link.lease(rate, burst, want)
        except (LinkError, TimeoutError):
            self.lease_errors += 1
            # Do not hammer a failing Redis from every shadow call: the local bucket decides for
            # a second, by then the plane's own loop knows whether Redis is away.
            self._remote_down_until = self._clock() + 1.0
            return None
        self.leases += 1
        now = self._clock()
        if now >= self._lease_until:
            self._lease = 0
        self._lease += got
        self._lease_until = now + self.lease_ttl
        if got < want:
            # The fleet is at the cap: ask again once the missing tokens have had time to refill
            # (at most 0.25 s), not on the next shadow call, or every call would cost a round trip.
            self._starved_until = now + min((want - got) / rate, 0.25)
        return got
