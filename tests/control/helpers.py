"""Waiting for a condition that another task or process brings about, with a generous deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> float:
    """Poll ``condition`` until true; return the seconds it took; fail the test on timeout."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started
