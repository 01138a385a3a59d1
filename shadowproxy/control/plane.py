"""The control plane: this process's view of the fleet-wide switches, kept in step with Redis.

Two modes:

- **local** (no ``--control``): changes made through the admin API apply to this process only;
- **redis** (``--control redis://…``): the state lives in Redis; every change is written atomically
  and published whole on a channel; each proxy's sync task applies what it hears at once, and also
  re-reads the full state on every (re)connect and every ``resync_interval`` seconds, so a missed
  message heals by itself.

:attr:`ControlPlane.current` is a plain attribute replaced whole on every change: the serving loop
reads it with no await and no lock. While Redis is away the last known state stays in force;
:attr:`connected`, :attr:`last_error` and :attr:`last_sync` say so, and the task reconnects with
backoff (0.05 s doubling to ``retry_max``). If Redis comes back empty (restarted without
persistence), the first proxy to reconnect writes its last known state back, so a kill switch does
not silently turn off because Redis restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from shadowproxy.control.bucket import ShadowRateCap
from shadowproxy.control.link import DEFAULT_NAMESPACE, LinkError, RedisLink, Subscription
from shadowproxy.control.switches import Change, Switches, SwitchesError
from shadowproxy.settings import Settings
from shadowproxy.tasks import TaskSet

log = logging.getLogger(__name__)

RETRY_MIN = 0.05


class ControlUnavailableError(Exception):
    """Redis mode, and Redis cannot be reached (or holds an unreadable state): a fleet-wide
    change cannot be made now."""


class ControlPlane:
    """The switches in force in this process, and how to change them for the whole fleet."""

    def __init__(
        self,
        url: str = "",
        *,
        sample: float = 100.0,
        shadow_rps: float = 0.0,
        namespace: str = DEFAULT_NAMESPACE,
        processes: int = 1,
        resync_interval: float = 5.0,
        retry_max: float = 2.0,
        timeout: float = 2.0,
    ) -> None:
        self.url = url
        self.processes = max(1, processes)
        """Serving processes on this machine (``--workers``): the local fallback bucket's share."""
        self.sample = sample
        """The ``--sample`` setting (shown beside an override)."""
        self.shadow_rps = shadow_rps
        """The ``--shadow-rps`` setting, in force while no override is set."""
        self.resync_interval = resync_interval
        self.retry_max = retry_max
        self.timeout = timeout
        self.current = Switches()
        """The switches in force; replaced whole on each change (read it, never mutate it)."""
        self.connected = not url
        """Redis mode: the last exchange with Redis succeeded. Local mode: always ``True``."""
        self.last_error: str | None = None
        """Why Redis was last unreachable or its state unreadable; ``None`` once healed."""
        self.last_sync: float | None = None
        """Unix time the state was last confirmed with Redis (``None``: never, or local mode)."""
        self.fleet_size = 1
        """Proxies last seen listening on the change channel (at least 1)."""
        self.changes_applied = 0
        """State changes taken into force in this process."""
        self.disconnects = 0
        """Times the link to Redis was lost or could not be made."""
        self._link = RedisLink(url, namespace=namespace, timeout=timeout) if url else None
        self.rate_cap = ShadowRateCap(
            rate=self.rate,
            link=self._link,
            remote_ok=lambda: self.connected and not self._closing.is_set(),
            fleet_size=lambda: max(self.fleet_size, self.processes),
        )
        """Fleet-wide cap on shadow calls: ``await plane.rate_cap.take()`` in the shadow task."""
        self._tasks = TaskSet("control")
        self._synced = asyncio.Event()
        self._closing = asyncio.Event()

    @classmethod
    def from_settings(cls, settings: Settings, *, processes: int = 1) -> ControlPlane:
        """A plane for ``--control`` (empty: local mode), ``--sample`` and ``--shadow-rps``;
        ``processes`` = the ``--workers`` count when this is one of several serving processes."""
        return cls(
            settings.control,
            sample=settings.sample,
            shadow_rps=settings.shadow_rps,
            processes=processes,
        )

    @property
    def mode(self) -> str:
        """``redis`` or ``local``."""
        return "redis" if self._link is not None else "local"

    @property
    def degraded(self) -> bool:
        """Redis mode and Redis unreachable: the last known state is in force, changes fail."""
        return self._link is not None and not self.connected

    def rate(self) -> float:
        """Shadow requests per second allowed now (0 = no cap)."""
        return self.current.rate(self.shadow_rps)

    # --- life cycle -------------------------------------------------------------------------------

    async def start(self, first_sync: float | None = None) -> None:
        """Start following Redis; wait up to ``first_sync`` seconds (default: the timeout) for the
        first read, so a kill switch already on is in force before traffic flows. Never fails:
        without Redis the process starts on the settings and keeps trying."""
        if self._link is None or len(self._tasks):
            return
        self._tasks.spawn(self._follow(), name="control-sync")
        wait = self.timeout if first_sync is None else first_sync
        try:
            async with asyncio.timeout(wait):
                await self._synced.wait()
        except TimeoutError:
            log.warning("control plane: no state from Redis yet (%s); going on", self.last_error)

    async def aclose(self) -> None:
        """Stop following Redis and close the connections."""
        # Close the connections first: that wakes a pending read, and the sync task ends by
        # itself on seeing the flag. Relying on cancellation alone is not enough: a cancel that
        # lands while redis-py's read timeout expires can be swallowed (seen on Python 3.11).
        self._closing.set()
        if self._link is not None:
            await self._link.aclose()
        await self._tasks.aclose(timeout=self.timeout)
        if self._link is not None:
            await self._link.aclose()  # again: a command in flight may have opened a connection

    # --- reading and changing -------------------------------------------------------------------

    async def update(self, change: Change) -> Switches:
        """Apply ``change`` fleet-wide (Redis mode) or here (local mode); return the new state.

        Raises :class:`ControlUnavailableError` when Redis cannot be reached or holds an
        unreadable state, and :class:`SwitchesError` when the change is invalid.
        """
        if self._link is None:
            self._take(change.apply(self.current))
            return self.current

        def merge(stored: bytes | None) -> bytes:
            return change.apply(_stored(stored)).to_json()

        try:
            raw = await self._link.update(merge)
        except LinkError as exc:
            raise ControlUnavailableError(str(exc)) from None
        state = Switches.from_json(raw)
        if state.version > self.current.version:
            self._take(state)
        return state

    async def fetch(self) -> Switches:
        """The state stored in Redis now (local mode: the current one)."""
        if self._link is None:
            return self.current
        try:
            raw = await self._link.read()
        except LinkError as exc:
            raise ControlUnavailableError(str(exc)) from None
        return _stored(raw)

    async def listeners(self) -> int:
        """Proxies subscribed to the change channel now (local mode: 1)."""
        if self._link is None:
            return 1
        try:
            return await self._link.listeners()
        except LinkError as exc:
            raise ControlUnavailableError(str(exc)) from None

    def health(self) -> dict[str, Any]:
        """The plane's state for ``/healthz`` and ``GET /api/v1/control``."""
        return {
            "mode": self.mode,
            "connected": self.connected,
            "last_error": self.last_error,
            "last_sync": _iso(self.last_sync),
            "fleet_size": self.fleet_size,
            "version": self.current.version,
        }

    # --- following Redis --------------------------------------------------------------------------

    async def _follow(self) -> None:
        """Subscribe, read the full state, apply messages; on any failure back off and redo."""
        assert self._link is not None
        delay = RETRY_MIN
        while not self._closing.is_set():
            try:
                async with self._link.subscribe() as subscription:
                    # Subscribed before reading: a change between the two is heard, not lost.
                    await self._resync()
                    delay = RETRY_MIN
                    await self._listen(subscription)
            except LinkError as exc:
                self._lost(str(exc))
            except Exception as exc:
                # A bug must not leave the plane claiming to follow Redis while it does not.
                log.exception("control plane: sync failed")
                self._lost(f"sync failed: {exc!r}")
            # Jitter: a fleet that lost Redis together should not reconnect in lockstep.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay * random.uniform(0.5, 1.0)):
                    await self._closing.wait()
            delay = min(delay * 2, self.retry_max)

    def _lost(self, error: str) -> None:
        if self._closing.is_set():
            return
        if self.connected or self.last_error != error:
            log.warning("control plane: Redis unreachable, keeping last state: %s", error)
        if self.connected:
            self.disconnects += 1
        self.connected = False
        self.last_error = error

    async def _listen(self, subscription: Subscription) -> None:
        loop = asyncio.get_running_loop()
        next_resync = loop.time() + self.resync_interval
        while not self._closing.is_set():
            raw = await subscription.next(timeout=max(0.01, next_resync - loop.time()))
            if raw is not None:
                self._take_published(raw)
            if loop.time() >= next_resync:
                await self._resync()
                next_resync = loop.time() + self.resync_interval

    async def _resync(self) -> None:
        """Read the full state; seed Redis with ours if it has none; adopt what it holds."""
        assert self._link is not None
        raw = await self._link.read()
        state: Switches | None = None
        if raw is None:
            if self.current.version > 0 and await self._link.seed(self.current.to_json()):
                log.info(
                    "control plane: Redis had no state; wrote back version %d",
                    self.current.version,
                )
        else:
            state = self._decode(raw)
            if state is not None and state.version < self.current.version:
                # Either a newer change was published while this read was in flight (read again
                # to see it), or Redis was reset and rewritten: then the stored state wins.
                again = await self._link.read()
                state = None if again is None else self._decode(again)
            if state is not None:
                self._take(state)
        self.fleet_size = max(1, await self._link.listeners())
        self._synced_now(readable=raw is None or state is not None)

    def _take_published(self, raw: bytes) -> None:
        state = self._decode(raw)
        if state is not None and state.version > self.current.version:
            self._take(state)
            self.last_sync = time.time()

    def _decode(self, raw: bytes) -> Switches | None:
        try:
            return Switches.from_json(raw)
        except SwitchesError as exc:
            # Keep the last known state rather than guess; say so until a good state arrives.
            self.last_error = f"unreadable state in Redis: {exc}"
            log.error("control plane: %s", self.last_error)
            return None

    def _synced_now(self, *, readable: bool) -> None:
        if not self.connected:
            log.info(
                "control plane: Redis reachable again (state version %d)", self.current.version
            )
        self.connected = True
        self.last_sync = time.time()
        if readable:
            self.last_error = None
        self._synced.set()

    def _take(self, state: Switches) -> None:
        if state.to_dict() == self.current.to_dict():
            return
        self.current = state
        self.changes_applied += 1
        log.info("control plane: switches now %s", state.to_dict())


def _stored(raw: bytes | None) -> Switches:
    """The state stored in Redis (none stored: the defaults)."""
    if raw is None:
        return Switches()
    try:
        return Switches.from_json(raw)
    except SwitchesError as exc:
        raise ControlUnavailableError(
            f"unreadable state in Redis ({exc}): write a valid one or delete the key"
        ) from None


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="milliseconds")


@asynccontextmanager
async def open_control_plane(
    settings: Settings, *, processes: int = 1
) -> AsyncIterator[ControlPlane]:
    """A started plane for these settings, closed on exit (for the runtime's exit stack)."""
    plane = ControlPlane.from_settings(settings, processes=processes)
    await plane.start()
    try:
        yield plane
    finally:
        await plane.aclose()
