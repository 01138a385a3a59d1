"""Memory given back: after a burst of large bodies is freed, the process shrinks again."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from shadowproxy.memory import Trimmer, collector_paused

# Hold 300 body-sized buffers with small objects allocated between them (a queue full of
# exchanges), free the buffers, keep the small objects, and report the RSS kept, in MB: right
# after the burst, and after a trimmer had the chance to run (``maybe`` with a due interval from
# a plain loop, or the asyncio task).
BURST = """
import asyncio, os, sys
from shadowproxy.memory import Trimmer
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
before = rss()
big, small = [], []
for size in (400_000, 330_000, 330_000):  # a larger body first raises glibc's threshold
    for i in range(300):
        big.append(bytes(size))
        small.append(bytes(2000) + bytes([i % 256]))  # malloc, not pymalloc
    big.clear()
kept = rss() - before
trimmer = Trimmer(interval=0.05)
if sys.argv[1] == "maybe":
    trimmer.maybe()  # not due yet: nothing happens
    early = rss() - before
    asyncio.run(asyncio.sleep(0.06))
    trimmer.maybe()
else:
    async def main():
        task = asyncio.create_task(trimmer.run())
        await asyncio.sleep(0.2)
        task.cancel()
    early = kept
    asyncio.run(main())
print(kept, early, rss() - before)
"""


def kept_mb(how: str) -> tuple[float, float, float]:
    done = subprocess.run(
        [sys.executable, "-c", BURST, how], capture_output=True, text=True, check=True
    )
    kept, early, after = (float(x) for x in done.stdout.split())
    return kept, early, after


@pytest.mark.parametrize("how", ["maybe", "run"])
def test_freed_bodies_are_returned_to_the_system(how: str) -> None:
    """The allocator keeps most of a 100 MB burst of freed bodies; a trim gives it back."""
    if not Trimmer().available:
        pytest.skip("not glibc")
    kept, early, after = kept_mb(how)
    assert kept > 40, (kept, after)
    assert early > 40, (early, after)  # an interval not yet over does not trim
    assert after < 15, (kept, after)


def test_collector_paused_holds_the_collector_off_and_restores_it() -> None:
    """Off inside the block, on after it, even when the block raises."""
    seen: list[bool] = []

    def fail() -> None:
        with collector_paused():
            seen.append(gc.isenabled())
            raise LookupError("in the block")

    with pytest.raises(LookupError, match="in the block"):
        fail()
    assert (seen, gc.isenabled()) == ([False], True)


def test_collector_paused_leaves_a_collector_that_was_off_alone() -> None:
    """A block inside another (or in a program that turned the collector off) does not turn it
    back on when it ends."""
    with collector_paused():
        with collector_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
