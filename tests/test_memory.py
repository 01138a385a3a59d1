"""Memory given back: after a burst of large bodies is freed, the process shrinks again."""

from __future__ import annotations

import subprocess
import sys

# Hold 300 body-sized buffers with small objects allocated between them (a queue full of
# exchanges), free the buffers, keep the small objects, and report the RSS kept, in MB.
BURST = """
import os, sys
from shadowproxy.memory import give_back_large_buffers
if sys.argv[1] == "on":
    assert give_back_large_buffers()
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
print(rss() - before)
"""


def kept_mb(setting: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", BURST, setting], capture_output=True, text=True, check=True
    )
    return float(done.stdout)


def test_freed_bodies_are_returned_to_the_system() -> None:
    """With the setting, what a burst of 100 MB of bodies leaves behind is small; the default
    allocator keeps most of it."""
    on, off = kept_mb("on"), kept_mb("off")
    assert on < 15, (on, off)
    assert off > 3 * on, (on, off)
