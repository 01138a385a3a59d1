"""The batched store writer: the only path from the pipeline to the store.

``submit`` is synchronous and O(1): it appends to a bounded memory buffer and never blocks or
raises. One owned task flushes the buffer in batches. When the store is down, slow or not yet
reachable at start-up, records wait in memory; past half the buffer they move to the disk spool
(:mod:`shadowproxy.store.spool`) when one is configured. Past the spool's cap the buffer fills and
new records are dropped and counted. A batch the store refused is spooled with the buffer when
the spool is empty, else retried first. Order is kept: a failed batch first, then the spool
replayed oldest first, then the buffer. Store writes are idempotent by exchange
id, so replaying something that had in fact been written changes nothing.

The writer opens the store (``aopen``) itself, retrying with backoff, so a remote store that is
down at start-up does not stop the proxy (an embedded SQLite file that cannot be opened does: that
is a configuration error). It never closes the store: its owner does, after ``aclose``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from shadowproxy.model import CapturedResponse, Comparison, Outcome
from shadowproxy.store.contract import Store, StoreError
from shadowproxy.store.document import RECORDED
from shadowproxy.store.spool import Spool

log = logging.getLogger(__name__)

_BACKOFF_FIRST = 0.1
_BACKOFF_MAX = 5.0


@dataclass(frozen=True, slots=True)
class WriterStats:
    """A snapshot of the writer's state, read by the metrics and health endpoints."""

    buffered: int
    """Comparisons held in memory (waiting, or in a batch being written)."""
    spooled_records: int
    spooled_bytes: int
    written: int
    """Comparisons handed to the store successfully (replays included)."""
    dropped: int
    """Comparisons lost: buffer and spool full, unwritten at shutdown without a spool, or
    unreadable in the spool (a torn or corrupted line)."""
    errors: int
    """Failed store calls (opens and writes)."""
    store_up: bool
    """False from the first failure until a write succeeds again; False before the first open."""
    last_error: str


class StoreWriter:
    """Buffers comparisons and writes them to a :class:`Store` in batches (see the module docs)."""

    def __init__(
        self,
        store: Store,
        *,
        batch: int = 200,
        flush_interval: float = 0.5,
        buffer: int = 10000,
        spool_dir: Path | None = None,
        spool_max_bytes: int = 256 << 20,
        body_cap: int = 1 << 20,
    ) -> None:
        """``body_cap``: bodies longer than this are cut as they are submitted, so the buffer's
        memory is bounded (the store cuts further, to its ``body_max``, after decoding)."""
        self._store = store
        self._body_cap = max(1, body_cap)
        self._batch = max(1, batch)
        self._interval = flush_interval
        self._capacity = max(1, buffer)
        self._spool_dir = spool_dir
        self._spool_max = spool_max_bytes
        self._spool: Spool | None = None
        self._spill_at = max(1, self._capacity // 2)
        """Buffer length from which records move to the spool while the store cannot take them."""
        self._buffer: deque[Comparison] = deque()
        self._inflight: list[Comparison] = []
        """A batch taken from the buffer and not yet written; retried before anything else."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._opened = False
        self._store_up = False
        self._retry_at = 0.0
        self._backoff = 0.0
        self._written = 0
        self._dropped = 0
        self._errors = 0
        self._last_error = ""

    # --- the pipeline side ------------------------------------------------------------------

    def submit(self, comparison: Comparison) -> bool:
        """Queue one comparison; False (and counted) when it had to be dropped.

        Never blocks and never raises: it runs on the loop that serves clients."""
        try:
            return self._submit(comparison)
        except Exception:  # a sink must not break the pipeline; the drop is counted
            self._dropped += 1
            log.exception("store writer: could not queue a comparison")
            return False

    def _submit(self, comparison: Comparison) -> bool:
        if self._closing or len(self._buffer) >= self._capacity:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                log.warning(
                    "store writer: buffer full, %d comparisons dropped so far", self._dropped
                )
            return False
        self._buffer.append(
            _capped(comparison, self._body_cap)
            if comparison.verdict in RECORDED
            else without_bodies(comparison)
        )
        if len(self._buffer) >= self._batch or len(self._buffer) >= self._spill_at:
            self._wake.set()
        return True

    def stats(self) -> WriterStats:
        spool = self._spool
        return WriterStats(
            buffered=len(self._buffer) + len(self._inflight),
            spooled_records=spool.records if spool else 0,
            spooled_bytes=spool.bytes if spool else 0,
            written=self._written,
            dropped=self._dropped + (spool.corrupt if spool else 0),
            errors=self._errors,
            store_up=self._store_up,
            last_error=self._last_error,
        )

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the spool (replaying what a previous run left) and start the flush task.

        An embedded (SQLite) store that cannot open is a configuration error and raises
        :class:`StoreError` here; a remote store that is down is retried in the background.
        """
        if self._task is not None:
            return
        self._closing = False
        if self._store.engine == "sqlite":
            await self._store.aopen()
            self._opened = True
        if self._spool_dir is not None:
            try:
                self._spool = await asyncio.to_thread(Spool.claim, self._spool_dir, self._spool_max)
            except OSError as exc:
                raise StoreError(f"--spool-dir {self._spool_dir}: {exc.strerror or exc}") from None
            if self._spool.records:
                log.info("store writer: %d spooled comparisons to replay", self._spool.records)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="store-writer")

    async def aclose(self, deadline: float = 5.0) -> None:
        """Flush what can be flushed within ``deadline`` seconds; spool or count the rest."""
        self._closing = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=deadline)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        left = [*self._inflight, *self._buffer]
        self._inflight, self._buffer = [], deque()
        try:
            await self._keep(left)
        finally:
            if self._spool is not None:
                self._spool.close()  # the slot is free for the next process; stats stay

    async def _keep(self, left: list[Comparison]) -> None:
        """Spool what could not be written, or count it lost."""
        if not left:
            return
        if self._spool is None and self._spool_dir is not None:
            with contextlib.suppress(OSError):
                self._spool = await asyncio.to_thread(Spool.claim, self._spool_dir, self._spool_max)
        kept = await self._to_spool(left) if self._spool is not None else 0
        if kept < len(left):
            self._dropped += len(left) - kept
            log.error(
                "store writer: %d comparisons could not be written before shutdown",
                len(left) - kept,
            )
        if kept:
            log.warning("store writer: %d comparisons spooled for the next start", kept)

    # --- the flush task ---------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            self._wake.clear()
            try:
                if loop.time() < self._retry_at:
                    if self._closing:
                        return
                    await self._spill(refused=True)
                    continue
                ok = await self._flush()
            except Exception:  # a bug here must not silently stop all writing
                log.exception("store writer: unexpected error; carrying on")
                ok = False
                await asyncio.sleep(self._interval)
            if self._closing and (not ok or not self._pending()):
                return

    def _pending(self) -> bool:
        return bool(self._inflight or self._buffer or self._spool)

    async def _flush(self) -> bool:
        """Write everything pending; False after a failure (backoff is then armed)."""
        try:
            if not self._opened:
                await self._spilling(self._store.aopen())
                self._opened = True
            while self._inflight or self._spool or self._buffer:
                if self._inflight:
                    await self._write(self._inflight)
                    self._inflight = []
                elif self._spool:
                    read = await asyncio.to_thread(self._spool.read, self._batch)
                    if read.records:
                        await self._write(read.records)
                    await asyncio.to_thread(self._spool.consume, read)
                else:
                    count = min(self._batch, len(self._buffer))
                    self._inflight = [self._buffer.popleft() for _ in range(count)]
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure of the store is data for stats(), never fatal
            self._failed(exc)
            await self._spill(refused=True)
            return False
        return True

    async def _write(self, batch: Sequence[Comparison]) -> None:
        await self._spilling(self._store.write(batch))
        self._written += len(batch)
        if not self._store_up:
            log.info("store writer: store is up")
        self._store_up = True
        self._backoff = 0.0

    async def _spilling(self, call: Coroutine[Any, Any, None]) -> None:
        """Await a store call; while it is pending (a slow or hung store), spill the buffer."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(call)
        try:
            while True:
                waiter = loop.create_task(self._wake.wait())
                try:
                    await asyncio.wait(
                        {task, waiter}, timeout=self._interval, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    waiter.cancel()
                if task.done():
                    task.result()
                    return
                self._wake.clear()
                await self._spill()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _failed(self, exc: Exception) -> None:
        self._errors += 1
        self._last_error = f"{type(exc).__name__}: {exc}"[:500]
        self._backoff = min(max(self._backoff * 2, _BACKOFF_FIRST), _BACKOFF_MAX)
        self._retry_at = asyncio.get_running_loop().time() + self._backoff
        if self._store_up or self._errors == 1:
            log.warning("store writer: store unavailable (%s); retrying", self._last_error)
        self._store_up = False

    async def _spill(self, *, refused: bool = False) -> None:
        """Move the buffer to the spool once it is more than half full.

        ``refused``: the in-flight batch failed and is not being written, so it counts too and is
        spooled before the buffer, if the spool is empty (anything in it is newer: order is
        kept). While a write is still pending its batch stays put, or a late success would store
        it twice.
        """
        spool_empty = self._spool is not None and not self._spool
        inflight = self._inflight if refused and spool_empty else []
        if self._spool is None or len(inflight) + len(self._buffer) < self._spill_at:
            return
        if inflight:
            kept = await self._to_spool(inflight)
            self._inflight = inflight[kept:]
            if self._inflight:
                return  # the spool is full: the rest waits for the store
        records = list(self._buffer)
        kept = await self._to_spool(records)
        for _ in range(kept):
            self._buffer.popleft()

    async def _to_spool(self, records: list[Comparison]) -> int:
        assert self._spool is not None
        try:
            return await asyncio.to_thread(self._spool.append, records)
        except OSError as exc:
            self._last_error = f"spool: {exc}"
            log.error("store writer: cannot spool: %s", exc)
            return 0


def without_bodies(comparison: Comparison) -> Comparison:
    """Only counted, never stored: drop the bodies so the buffer and spool stay small."""
    exchange = comparison.exchange

    def slim(outcome: Outcome) -> Outcome:
        if isinstance(outcome, CapturedResponse) and outcome.body:
            return replace(outcome, body=b"")
        return outcome

    return replace(
        comparison,
        exchange=replace(
            exchange,
            request=replace(exchange.request, body=b"")
            if exchange.request.body
            else exchange.request,
            primary=slim(exchange.primary),
            shadow=slim(exchange.shadow),
        ),
    )


def _capped(comparison: Comparison, cap: int) -> Comparison:
    """Stored in full, but never more than ``cap`` bytes per body."""
    exchange = comparison.exchange

    def cut(outcome: Outcome) -> Outcome:
        if isinstance(outcome, CapturedResponse) and len(outcome.body) > cap:
            return replace(outcome, body=outcome.body[:cap], truncated=True)
        return outcome

    request = exchange.request
    primary, shadow = cut(exchange.primary), cut(exchange.shadow)
    if primary is exchange.primary and shadow is exchange.shadow and len(request.body) <= cap:
        return comparison
    return replace(
        comparison,
        exchange=replace(
            exchange,
            request=replace(request, body=request.body[:cap])
            if len(request.body) > cap
            else request,
            primary=primary,
            shadow=shadow,
        ),
    )
