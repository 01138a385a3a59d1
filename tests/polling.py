"""Waiting in tests for something the system does in the background."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], object | Awaitable[object]],
    timeout: float = 20.0,
    describe: Callable[[], object] | None = None,
) -> None:
    """Poll ``check`` (plain or async) until it is truthy; fail after ``timeout`` seconds, saying
    what ``describe()`` returns (the state worth seeing when it never happened)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            state = f"; {describe()}" if describe is not None else ""
            raise AssertionError(f"not true within {timeout} s: {check.__qualname__}{state}")
        await asyncio.sleep(0.02)
