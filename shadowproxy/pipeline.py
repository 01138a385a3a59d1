"""From exchange to comparison to sinks, off the serving loop.

::

    Mirror ─has_room()?─► shadow call ─submit()─► bounded queue ─► comparators ─► sinks
       no: shed and counted,                                 batches over   compare   metrics,
       no shadow call                                        a socket       + redact  store writer

Comparing a 300 KB body takes milliseconds of CPU; on the serving loop that would stall every
client, so comparisons run in comparator processes (``shadowproxy.comparators``). The queue is
bounded by count and by body bytes (a :class:`Budget` over what waits and what is being
compared), and the mirror asks for room *before* it calls the shadow:
when the comparators cannot keep up, new requests are not mirrored at all (shed and counted as
``queue_full``), so a backlog costs neither a shadow call nor memory. A crashed comparator
process is replaced and the exchanges it held are counted as skipped.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from collections.abc import Callable, Sequence

from shadowproxy.budget import Budget
from shadowproxy.comparators import ComparatorGoneError, ComparatorProcess, Failure, Job
from shadowproxy.metrics import Metrics
from shadowproxy.model import Comparison, Exchange, SkipReason, Verdict
from shadowproxy.rules import EndpointRules
from shadowproxy.store.redaction import RedactionPolicy
from shadowproxy.tasks import TaskSet

log = logging.getLogger(__name__)


Sink = Callable[[Comparison], object]
"""Receives every comparison (``Metrics.consume``, ``StoreWriter.submit``). Must not block:
a sink with I/O to do queues internally."""

BATCH_JOBS = 64
"""Most exchanges sent to a comparator in one frame."""
BATCH_BYTES = 256 * 1024
"""Body bytes past which a batch is closed (a batch always takes at least one exchange). Pickling
a batch and unpickling its answer happen on the serving loop: 8 MB batches of 330 KB exchanges
put 35 ms into the p99 of a single client, 256 KB batches 7 ms."""
BATCHES_PER_COMPARATOR = 2
"""Batches handed to a process at once: it starts the next while its answer travels back."""


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
        self._queue: asyncio.Queue[Job] = asyncio.Queue()  # bounded by the budget
        self.budget = Budget(queue_size, queue_bytes)
        """Exchanges queued or being compared, and their body bytes."""
        self._comparators = comparators
        self._sinks = tuple(sinks)
        self._redaction = redaction
        self._metrics = metrics
        self._context = multiprocessing.get_context("spawn")
        self._workers = TaskSet("comparator-feed")
        self._processes: list[ComparatorProcess] = []
        self._restarting: list[asyncio.Lock] = []
        self.busy = 0
        self.compared = 0
        self.dropped = 0
        self.crashed = 0
        metrics.gauge("queue_depth", "Exchanges waiting for a comparator.", self._queue.qsize)
        metrics.gauge("comparisons_in_progress", "Exchanges being compared.", lambda: self.busy)
        metrics.gauge(
            "queue_bytes",
            "Body bytes held by exchanges queued or being compared.",
            lambda: self.budget.held_bytes,
        )

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def has_room(self, pending: int, pending_bytes: int) -> bool:
        """See :meth:`Budget.has_room`."""
        return self.budget.has_room(pending, pending_bytes)

    def submit(self, exchange: Exchange, rules: EndpointRules, ruleset_version: str) -> bool:
        """Queue an exchange for comparison; ``False`` (and counted) when the queue is full,
        by count or by the bytes its bodies hold."""
        size = exchange.body_bytes
        if not self.budget.take(size):
            return self._drop(exchange)
        self._queue.put_nowait(Job(exchange, rules, ruleset_version, size))
        return True

    def _drop(self, exchange: Exchange) -> bool:
        self.dropped += 1
        self._metrics.skip(exchange.endpoint, SkipReason.QUEUE_FULL)
        return False

    async def start(self) -> None:
        # spawn, not fork: the serving process has threads (SQLite writer, DNS) that fork would
        # copy in an unknown state.
        for slot in range(self._comparators):
            self._processes.append(await ComparatorProcess.spawn(self._context, self._redaction))
            self._restarting.append(asyncio.Lock())
            for index in range(BATCHES_PER_COMPARATOR):
                self._workers.spawn(self._feed(slot), name=f"comparator-feed-{slot}-{index}")

    def _batch(self, first: Job) -> list[Job]:
        batch = [first]
        size = first.size
        while len(batch) < BATCH_JOBS and size < BATCH_BYTES and not self._queue.empty():
            job = self._queue.get_nowait()
            batch.append(job)
            size += job.size
        return batch

    async def _feed(self, slot: int) -> None:
        while True:
            batch = self._batch(await self._queue.get())
            self.busy += len(batch)
            try:
                for comparison in await self._compare(slot, batch):
                    self.compared += 1
                    self._emit(comparison)
            finally:
                self.busy -= len(batch)
                for job in batch:
                    self.budget.release(job.size)
                    self._queue.task_done()

    async def _compare(self, slot: int, batch: list[Job]) -> list[Comparison]:
        started = time.perf_counter()
        process = self._processes[slot]
        if process.gone:
            process = await self._replace(slot, process)
        try:
            results = await process.compare(batch)
        except ComparatorGoneError:
            self.crashed += len(batch)
            log.error("a comparator process died; starting a new one")
            await self._replace(slot, process)
            return [self._skipped(job, "comparator_crashed", started) for job in batch]
        comparisons = []
        for job, result in zip(batch, results, strict=True):
            if isinstance(result, Failure):
                log.error("comparing exchange %s failed:\n%s", job.exchange.id, result.detail)
                comparisons.append(self._skipped(job, "comparator_error", started))
            else:
                comparisons.append(result)
        return comparisons

    async def _replace(self, slot: int, dead: ComparatorProcess) -> ComparatorProcess:
        async with self._restarting[slot]:
            if self._processes[slot] is dead:  # the slot's other feeder may have done it
                self._processes[slot] = await ComparatorProcess.spawn(
                    self._context, self._redaction
                )
                await dead.aclose(0.0)
        return self._processes[slot]

    @staticmethod
    def _skipped(job: Job, reason: str, started: float) -> Comparison:
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
        for process in self._processes:
            await process.aclose(timeout)
        if left:
            log.warning("shutdown: %d queued exchanges were not compared", left)
        return left
