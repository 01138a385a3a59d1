"""How much mirroring the serving loop can afford right now.

The shadow call and the hand-off to the comparators run on the serving loop, so each mirrored
request takes loop time that clients could have had. The governor measures the loop's backlog
(how long a task that yields waits to run again: what every client's next step waits for too)
and samples mirroring down while the backlog is above ``lag_max``, back up while it is well
below: multiplicative decrease, additive increase. When the loop is short, mirroring is shed
first (counted as ``serving_busy``), and forwarding keeps the time.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from shadowproxy.metrics import Metrics

PROBE_INTERVAL = 0.01
"""Seconds between two backlog probes."""
WINDOW = 10
"""Probes averaged before the share changes (a window of about 0.1 s)."""
DECREASE = 0.7
"""The share is multiplied by this after a window over ``lag_max``."""
INCREASE = 0.05
"""And grows by this after a window under a quarter of it (full again within 2 s)."""
FLOOR = 0.01
"""The share never falls below this: a saturated proxy still compares some traffic."""


class Governor:
    """The share of mirror-eligible requests that are mirrored (1.0 while the loop keeps up)."""

    def __init__(
        self,
        *,
        lag_max: float,
        metrics: Metrics | None = None,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.lag_max = lag_max
        self.share = 1.0
        self.lag = 0.0
        """The backlog measured over the last window, in seconds."""
        self._draw = draw
        if metrics is not None:
            metrics.gauge(
                "mirror_share",
                "Share of mirror-eligible requests mirrored; below 1 while the serving loop is "
                "saturated.",
                lambda: self.share,
            )
            metrics.gauge(
                "loop_lag_seconds",
                "Serving-loop backlog: how long a yielding task waits to run again.",
                lambda: self.lag,
            )

    def admit(self) -> bool:
        """Whether this request may be mirrored."""
        return self.share >= 1.0 or self._draw() < self.share

    def observe(self, lag: float) -> None:
        """Adjust the share to one window's mean backlog."""
        self.lag = lag
        if lag > self.lag_max:
            self.share = max(FLOOR, self.share * DECREASE)
        elif lag < self.lag_max / 4:
            self.share = min(1.0, self.share + INCREASE)

    async def run(self) -> None:
        """Probe the loop for as long as it runs (a task owned by the traffic app); with
        ``lag_max`` 0 the governor is off: nothing is probed and the share stays 1."""
        if not self.lag_max:
            return
        total = 0.0
        probes = 0
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            started = time.perf_counter()
            await asyncio.sleep(0)  # back at the end of the loop's queue
            total += time.perf_counter() - started
            probes += 1
            if probes == WINDOW:
                self.observe(total / probes)
                total = 0.0
                probes = 0
