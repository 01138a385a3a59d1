"""From exchange to comparison to sinks, off the serving loop.

::

    Mirror ──submit()──► bounded queue ──► comparator processes ──► sinks (metrics, store writer)
                          full: dropped         compare + redact        a failing sink is logged,
                          and counted                                   the others still run

Comparing a 300 KB body takes milliseconds of CPU; on the serving loop that would stall every
client, so comparisons run in worker processes. The queue is bounded: when the comparators cannot
keep up, new exchanges are dropped and counted (``queue_full``), never queued without bound.
A crashed worker process is replaced and its exchange counted as skipped.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from shadowproxy.metrics import Metrics
from shadowproxy.model import CapturedResponse, Comparison, Exchange, SkipReason, Verdict
from shadowproxy.rules import EndpointRules
from shadowproxy.store.redaction import RedactionPolicy
from shadowproxy.tasks import TaskSet

log = logging.getLogger(__name__)


Sink = Callable[[Comparison], object]
"""Receives every comparison (``Metrics.consume``, ``StoreWriter.submit``). Must not block:
a sink with I/O to do queues internally."""


@dataclass(frozen=True, slots=True)
class Job:
    """What a comparator process needs for one exchange."""

    exchange: Exchange
    rules: EndpointRules
    ruleset_version: str
    size: int = 0
    """Body bytes the exchange holds, for the queue's byte budget."""


def _body_bytes(exchange: Exchange) -> int:
    size = len(exchange.request.body)
    for outcome in (exchange.primary, exchange.shadow):
        if isinstance(outcome, CapturedResponse):
            size += len(outcome.body)
    return size


def compare_and_redact(job: Job, policy: RedactionPolicy) -> Comparison:
    """Runs in a comparator process: the verdict, then redaction before anything leaves."""
    from shadowproxy.compare.comparator import compare
    from shadowproxy.store.redaction import redact_comparison

    comparison = compare(job.exchange, job.rules, job.ruleset_version)
    return redact_comparison(comparison, policy, job.rules.redact)


class Pipeline:
    """The bounded queue, the comparator processes and the sinks."""

    def __init__(
        self,
        *,
        queue_size: int,
        comparators: int,
        sinks: Sequence[Sink],
        redaction: RedactionPolicy,
        metrics: Metrics,
        queue_bytes: int = 0,
    ) -> None:
        self._queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=queue_size)
        self._queue_bytes = queue_bytes
        self.queued_bytes = 0
        """Body bytes held by queued and in-progress exchanges (bounded by ``queue_bytes``)."""
        self._comparators = comparators
        self._sinks = tuple(sinks)
        self._redaction = redaction
        self._metrics = metrics
        self._workers = TaskSet("comparator-feed")
        self._pool: ProcessPoolExecutor | None = None
        self.busy = 0
        self.compared = 0
        self.dropped = 0
        self.crashed = 0
        metrics.gauge("queue_depth", "Exchanges waiting for a comparator.", self._queue.qsize)
        metrics.gauge("comparisons_in_progress", "Exchanges being compared.", lambda: self.busy)
        metrics.gauge(
            "queue_bytes", "Body bytes held by queued exchanges.", lambda: self.queued_bytes
        )

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def submit(self, exchange: Exchange, rules: EndpointRules, ruleset_version: str) -> bool:
        """Queue an exchange for comparison; ``False`` (and counted) when the queue is full,
        by count or by the bytes its bodies hold."""
        size = _body_bytes(exchange)
        if self._queue_bytes and self.queued_bytes + size > self._queue_bytes:
            return self._drop(exchange)
        try:
            self._queue.put_nowait(Job(exchange, rules, ruleset_version, size))
        except asyncio.QueueFull:
            return self._drop(exchange)
        self.queued_bytes += size
        return True

    def _drop(self, exchange: Exchange) -> bool:
        self.dropped += 1
        self._metrics.skip(exchange.endpoint, SkipReason.QUEUE_FULL)
        return False

    async def start(self) -> None:
        self._pool = self._new_pool()
        # Two feeders per process: one waits on a result while the other hands over the next job.
        for index in range(self._comparators * 2):
            self._workers.spawn(self._feed(), name=f"comparator-feed-{index}")

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the serving process has threads (SQLite writer, DNS) that fork would
        # copy in an unknown state.
        return ProcessPoolExecutor(
            max_workers=self._comparators, mp_context=multiprocessing.get_context("spawn")
        )

    async def _feed(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = await self._queue.get()
            self.busy += 1
            try:
                comparison = await self._compare(loop, job)
                self.compared += 1
                self._emit(comparison)
            finally:
                self.busy -= 1
                self.queued_bytes -= job.size
                self._queue.task_done()

    async def _compare(self, loop: asyncio.AbstractEventLoop, job: Job) -> Comparison:
        pool = self._pool
        assert pool is not None
        started = time.perf_counter()
        try:
            return await loop.run_in_executor(pool, compare_and_redact, job, self._redaction)
        except BrokenProcessPool:
            self.crashed += 1
            log.error("a comparator process died; starting a new one")
            if self._pool is pool:
                self._pool = self._new_pool()
                pool.shutdown(wait=False, cancel_futures=True)
            reason = "comparator_crashed"
        except Exception:
            log.exception("comparing exchange %s failed", job.exchange.id)
            reason = "comparator_error"
        return Comparison(
            exchange=job.exchange,
            verdict=Verdict.SKIPPED,
            ruleset_version=job.ruleset_version,
            reason=reason,
            duration=time.perf_counter() - started,
        )

    def _emit(self, comparison: Comparison) -> None:
        for sink in self._sinks:
            try:
                sink(comparison)
            except Exception:
                name = getattr(sink, "__qualname__", type(sink).__name__)
                self._metrics.sink_failed(name)
                log.exception("sink %s failed on %s", name, comparison.exchange.id)

    async def drain(self, timeout: float) -> bool:
        """Wait until every queued exchange is compared and handed to the sinks."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            return False
        return True

    async def aclose(self, timeout: float = 5.0) -> int:
        """Compare what is queued within ``timeout``; return how many exchanges were not."""
        await self.drain(timeout)
        left = self._queue.qsize() + self.busy
        await self._workers.aclose()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if left:
            log.warning("shutdown: %d queued exchanges were not compared", left)
        return left
