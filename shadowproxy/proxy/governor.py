"""How much mirroring the serving process can afford right now.

The shadow call and the hand-off to the comparators run on the serving loop, so each mirrored
request takes loop time that clients could have had, and the comparators take CPU. The governor
watches three signs that time is short:

- the loop's backlog (how long a task that yields waits to run again: what every client's next
  step waits for too) above ``lag_max``;
- on a loop made by :func:`serving_loop`, the share of wall time it spent working above
  ``BUSY_MAX`` (a saturated loop can keep each wait short and still give clients less: at
  saturation every mirrored request is a client served later);
- CPU pressure (Linux PSI: the share of time some task waited for a CPU; this process's cgroup's
  where cgroup v2 gives one, else the machine's) above ``pressure_max``: the cores are full, and
  the comparators and other serving processes compete with forwarding for them.

While any holds it samples mirroring down, and back up once all are well clear: multiplicative
decrease, additive increase. When time is short, mirroring is shed first (counted as
``serving_busy``), and forwarding keeps the time.
"""

from __future__ import annotations

import asyncio
import math
import random
import selectors
import time
import weakref
from collections.abc import Callable
from pathlib import Path

from shadowproxy.metrics import Metrics

PROBE_INTERVAL = 0.01
"""Seconds between two backlog probes."""
WINDOW = 5
"""Probes averaged before the share changes (a window of about 0.05 s)."""
DECREASE = 0.5
"""The share is multiplied by this after a window over a limit: from 1 to the floor in about
0.35 s. Every window spent mirroring too much is a window of clients served later (at one
connection, the old 0.7 per 0.1 s mirrored a third of a second's worth of requests before it
got there, and those were the run's p99)."""
INCREASE = 0.025
"""And grows by this after a window well under every limit (full again within 2 s)."""
FLOOR = 0.01
"""The share never falls below this: a saturated proxy still compares some traffic."""
BUSY_MAX = 0.9
"""Share of wall time the loop may spend working before mirroring is sampled down."""
BUSY_CLEAR = 0.75
"""And below which it may grow again."""
PRESSURE_MAX = 0.3
"""Default share of wall time some task may wait for a CPU before mirroring is sampled down."""
PRESSURE_CLEAR = 2 / 3
"""Below this part of the limit the share may grow again."""
PSI_CPU = Path("/proc/pressure/cpu")
"""The machine's CPU pressure."""
CGROUP_MOUNTS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))
"""Where cgroup v2 is mounted: alone, or beside v1 (a hybrid host)."""


def pressure_file(
    own: Path = Path("/proc/self/cgroup"), mounts: tuple[Path, ...] = CGROUP_MOUNTS
) -> Path:
    """The CPU pressure that speaks for this process: its own cgroup's where cgroup v2 gives one
    (in a container, its own; a neighbour's load counts only when it makes our tasks wait), else
    the machine's."""
    try:
        lines = own.read_text().splitlines()
    except OSError:
        return PSI_CPU
    for line in lines:
        if line.startswith("0::"):
            relative = line.removeprefix("0::").lstrip("/")
            for mount in mounts:
                candidate = mount / relative / "cpu.pressure"
                if candidate.is_file():
                    return candidate
    return PSI_CPU


def cpu_stall_seconds(path: Path = PSI_CPU) -> float | None:
    """Seconds, since boot, that some task waited for a CPU; ``None`` where the kernel does not
    say (no PSI)."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("some "):
            for field in line.split():
                if field.startswith("total="):
                    return int(field.removeprefix("total=")) / 1e6
    return None


class IdleSelector(selectors.DefaultSelector):
    """The platform's selector, adding up the time the loop waited with nothing to do."""

    def __init__(self) -> None:
        super().__init__()
        self.idle = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0:
            return super().select(timeout)  # work is waiting: a poll, not idleness
        started = time.perf_counter()
        try:
            return super().select(timeout)
        finally:
            self.idle += time.perf_counter() - started


_IDLE: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, IdleSelector] = (
    weakref.WeakKeyDictionary()
)


def idle_seconds(loop: asyncio.AbstractEventLoop) -> float | None:
    """Seconds ``loop`` has waited with nothing to do; ``None`` unless :func:`serving_loop` made
    it."""
    selector = _IDLE.get(loop)
    return selector.idle if selector is not None else None


def serving_loop() -> asyncio.AbstractEventLoop:
    """An event loop whose idle time the governor can read (``asyncio.Runner(loop_factory=)``)."""
    selector = IdleSelector()
    loop = asyncio.SelectorEventLoop(selector)
    _IDLE[loop] = selector
    return loop


def _no_reading() -> None:
    return None


def _grown(before: float | None, after: float | None, wall: float) -> float | None:
    """The share of ``wall`` seconds by which a count of seconds grew (0 to 1); ``None`` when
    either reading is missing."""
    if before is None or after is None:
        return None
    return min(1.0, max(0.0, (after - before) / wall))


class Governor:
    """The share of mirror-eligible requests that are mirrored (1.0 while the loop keeps up)."""

    def __init__(
        self,
        *,
        lag_max: float,
        pressure_max: float = PRESSURE_MAX,
        metrics: Metrics | None = None,
        draw: Callable[[], float] = random.random,
        stall: Callable[[], float | None] | None = None,
    ) -> None:
        """``stall``: cumulative seconds some task waited for a CPU (default: read from
        :func:`pressure_file`)."""
        self.lag_max = lag_max
        self._pressure_limit = pressure_max or math.inf  # 0: CPU pressure plays no part
        self.share = 1.0
        self.lag = 0.0
        """The backlog measured over the last window, in seconds."""
        self.busy = 0.0
        """Share of the last window's wall time the loop spent working (0 when not known)."""
        self.pressure = 0.0
        """Share of the last window some task waited for a CPU (0 when not known)."""
        self._draw = draw
        if stall is None:
            path = pressure_file()

            def stall() -> float | None:
                return cpu_stall_seconds(path)

        self._stall: Callable[[], float | None] = stall if pressure_max else _no_reading
        if metrics is not None:
            metrics.gauge(
                "mirror_share",
                "Share of mirror-eligible requests mirrored; below 1 while the serving loop or "
                "the CPUs are short of time.",
                lambda: self.share,
            )
            metrics.gauge(
                "loop_lag_seconds",
                "Serving-loop backlog: how long a yielding task waits to run again.",
                lambda: self.lag,
            )
            metrics.gauge(
                "loop_busy_ratio",
                "Share of wall time the serving loop spent working (not waiting for events).",
                lambda: self.busy,
            )
            metrics.gauge(
                "cpu_pressure_ratio",
                "Share of wall time some task waited for a CPU (Linux PSI: this process's cgroup, "
                "or the machine).",
                lambda: self.pressure,
            )

    def admit(self) -> bool:
        """Whether this request may be mirrored."""
        return self.share >= 1.0 or self._draw() < self.share

    def observe(self, lag: float, busy: float = 0.0, pressure: float = 0.0) -> None:
        """Adjust the share to one window's mean backlog, busy share and CPU pressure."""
        self.lag = lag
        self.busy = busy
        self.pressure = pressure
        limit = self._pressure_limit
        if lag > self.lag_max or busy > BUSY_MAX or pressure > limit:
            self.share = max(FLOOR, self.share * DECREASE)
        elif lag < self.lag_max / 4 and busy < BUSY_CLEAR and pressure < limit * PRESSURE_CLEAR:
            self.share = min(1.0, self.share + INCREASE)

    async def run(self) -> None:
        """Probe the loop for as long as it runs (a task owned by the traffic app); with
        ``lag_max`` 0 the governor is off: nothing is probed and the share stays 1."""
        if not self.lag_max:
            return
        loop = asyncio.get_running_loop()
        total = 0.0
        probes = 0
        window_start = time.perf_counter()
        idle_start, stall_start = idle_seconds(loop), self._stall()
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            started = time.perf_counter()
            await asyncio.sleep(0)  # back at the end of the loop's queue
            now = time.perf_counter()
            total += now - started
            probes += 1
            if probes == WINDOW:
                wall = now - window_start
                idle, stall = idle_seconds(loop), self._stall()
                idled = _grown(idle_start, idle, wall)
                busy = 0.0 if idled is None else 1.0 - idled
                self.observe(total / probes, busy, _grown(stall_start, stall, wall) or 0.0)
                idle_start, stall_start = idle, stall
                total = 0.0
                probes = 0
                window_start = now
