"""App-owned background tasks: every task is referenced, named, and awaited or cancelled on close.

A bare ``asyncio.create_task`` whose result nobody keeps can be garbage-collected mid-run, and one
nobody awaits hides its exception; the lint bans it everywhere but here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskSet:
    """A set of running tasks owned by one component."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name or self._name)  # noqa: TID251 - the one owner
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("%s task %s failed", self._name, task.get_name(), exc_info=exc)

    def __len__(self) -> int:
        return len(self._tasks)

    async def wait(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for the tasks to finish; return how many still run."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        return len(self._tasks)

    async def aclose(self, timeout: float = 0.0) -> int:
        """Let tasks finish for ``timeout`` seconds, cancel the rest; return how many were cut."""
        remaining = await self.wait(timeout) if timeout > 0 else len(self._tasks)
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        return remaining
