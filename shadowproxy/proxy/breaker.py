"""The shadow's circuit breaker: stop mirroring to a shadow that keeps failing, try again later.

Closed (mirroring) → after ``failures`` consecutive shadow failures → open (every request skipped
as ``circuit_open``) for ``cooldown`` seconds → half-open: one probe call is let through; if it
succeeds the breaker closes, if it fails it opens for another cool-down.

Only transport failures count (timeout, refused, reset, broken HTTP): a shadow that answers 500 is
answering, and its 500s are exactly what the comparison should record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures; decides whether the next call may go."""

    def __init__(
        self,
        *,
        failures: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = failures
        self.cooldown = cooldown
        self._clock = clock
        self._consecutive = 0
        self._opened_at = 0.0
        self._probing = False
        self.state = BreakerState.CLOSED
        self.opened = 0
        """How many times the breaker has opened (a counter for metrics)."""

    def allow(self) -> bool:
        """May a shadow call start now? In half-open state, only one probe at a time."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            if self._clock() - self._opened_at < self.cooldown:
                return False
            self.state = BreakerState.HALF_OPEN
        if self._probing:
            return False
        self._probing = True
        return True

    def release(self) -> None:
        """A call :meth:`allow` let through was not made after all (the rate cap refused it):
        hand the half-open probe back, so the next call can be the probe."""
        self._probing = False

    def record(self, ok: bool) -> None:
        """Report how a call that :meth:`allow` let through ended."""
        if ok:
            self._consecutive = 0
            self._probing = False
            self.state = BreakerState.CLOSED
            return
        self._consecutive += 1
        if self.state is BreakerState.HALF_OPEN or self._consecutive >= self.threshold:
            self._probing = False
            if self.state is not BreakerState.OPEN:
                self.opened += 1
            self.state = BreakerState.OPEN
            self._opened_at = self._clock()
