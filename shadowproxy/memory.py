"""How the process gives memory back after a burst of large bodies.

glibc serves allocations below a moving threshold (it grows up to 32 MB as large blocks are
freed) from its heap, and a heap fragmented by many 300 KB bodies is not returned to the system
when they are freed: a proxy whose queue once filled would keep that RSS for good.
``malloc_trim(0)`` hands every wholly free page of the heap back. It costs about 0.1 ms when there
is nothing to give and a few ms after a burst, so it runs at most once a second, off the request
path. (Fixing the mmap threshold instead costs every socket read an mmap, a mremap and a munmap:
asyncio reads into 256 KiB buffers. That was a quarter of a small request's CPU time.)
Elsewhere than glibc this does nothing.

Parsing and walking two JSON documents allocates thousands of containers that can form no cycle;
:func:`collector_paused` keeps the cyclic garbage collector from scanning them again and again
while they live (reference counting frees them all the same).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

INTERVAL = 1.0
"""Seconds between trims."""


def _load_trim() -> Callable[[], object] | None:
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim  # the C library this process already has
    except (OSError, AttributeError):
        return None  # not glibc
    malloc_trim.argtypes = (ctypes.c_size_t,)
    malloc_trim.restype = ctypes.c_int
    return lambda: malloc_trim(0)


class Trimmer:
    """Gives freed heap memory back to the system, at most once per ``interval``."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self._trim = _load_trim()
        self._last = time.monotonic()

    @property
    def available(self) -> bool:
        """``False`` where the allocator has no trim (not glibc)."""
        return self._trim is not None

    def trim(self) -> None:
        if self._trim is not None:
            self._trim()
        self._last = time.monotonic()

    def maybe(self) -> None:
        """Trim if the last trim is ``interval`` old: for loops that have no event loop."""
        if time.monotonic() - self._last >= self.interval:
            self.trim()

    async def run(self) -> None:
        """Trim every ``interval`` until cancelled: a serving or worker process's task."""
        if self._trim is None:
            return
        while True:
            await asyncio.sleep(self.interval)
            self.trim()


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector held off for the block, and back on after it.

    A 330 KB document parses into some 20,000 containers, and every 700 allocations the collector
    walks the young ones: 0.7–0.9 ms of a large pair's 5.7 ms comparison, for trees that hold
    no cycle. Cycles the block does create are collected after it. When the collector is already
    off (another thread's block, or the application's choice) it is left as it is.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
