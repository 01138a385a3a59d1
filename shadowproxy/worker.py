"""``shadowproxy worker``: compare and store the exchanges proxies published to the Redis stream.

::

    Redis stream ──XREADGROUP──► decode ──► compare + redact ──► store.write(batch) ──► XACK
       ▲  (consumer group)                  (a thread; rules      retried while the     only after
       │                                     from --rules)        store is down         the write
       └──XAUTOCLAIM: entries pending longer than --claim-idle on a dead worker are taken over

Delivery is at least once and storage exactly once: an entry is acknowledged only after its batch
was written, so a worker killed mid-batch leaves its entries pending for another worker to claim;
the store's writes are idempotent by exchange id, so an entry compared twice is counted and stored
once. On SIGTERM the worker finishes the batch in hand (write, acknowledge) and exits; if the
store stays down past ``stop_grace`` it exits without acknowledging, and the entries wait for the
next worker.

Comparisons run under the worker's own rule file, resolved by method, path, query and headers;
the endpoint name is the one the proxy gave (the proxy's rule names and auto-templates stay the
metrics' and the store's vocabulary). When the proxy saw another ruleset version the comparison
still runs, and the disagreement is counted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

from aiohttp import web

from shadowproxy.comparators import Job, compare_and_redact
from shadowproxy.memory import Trimmer
from shadowproxy.metrics import CONTENT_TYPE, Metrics
from shadowproxy.model import Comparison, Headers, Verdict
from shadowproxy.queue import (
    DEFAULT_STREAM,
    GroupMissingError,
    QueueCodecError,
    QueuedExchange,
    QueueError,
    RedisStream,
    StreamEntry,
    decode_exchange,
)
from shadowproxy.rules import RulesError
from shadowproxy.rules.holder import RulesHolder
from shadowproxy.settings import HostPort, Settings
from shadowproxy.store import store_from_settings
from shadowproxy.store.contract import Store, StoreError
from shadowproxy.store.redaction import RedactionPolicy, redact_comparison
from shadowproxy.tasks import TaskSet

log = logging.getLogger(__name__)

DEFAULT_GROUP = "shadowproxy"


class WorkerStartupError(Exception):
    """The worker cannot start; the message is one line saying what and where."""


def default_consumer() -> str:
    """A consumer name unique to this process: ``host-pid``."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """Everything a worker needs. ``base`` carries the options shared with ``shadowproxy run``:
    ``queue``, ``store`` and its limits, ``rules``, ``redact_*`` and ``log_level``."""

    base: Settings
    stream: str = DEFAULT_STREAM
    """The stream key (the proxies' default unless changed on both sides)."""
    group: str = DEFAULT_GROUP
    """Consumer group: workers in one group share the work; another group gets its own copy."""
    consumer: str = field(default_factory=default_consumer)
    """This worker's name in the group. Keep it stable across restarts to resume its own pending
    entries at once instead of after ``claim_idle``."""
    batch: int = 100
    """Entries read, compared and written per batch."""
    claim_idle: float = 60.0
    """Seconds an entry may stay pending on another consumer before this one takes it over. Longer
    than the slowest batch (store outages included), or live workers' entries get claimed and
    compared twice (harmless for the store, double-counted in metrics)."""
    block: float = 1.0
    """Seconds one read waits for new entries; also the latency of noticing SIGTERM when idle."""
    stop_grace: float = 10.0
    """Seconds a stopping worker keeps retrying the store write or the acknowledgement."""
    forget_idle: float = 3600.0
    """Seconds a consumer with nothing pending may stay silent before it is removed from the group
    (restarts under new names would otherwise pile up in ``XINFO CONSUMERS``)."""
    max_deliveries: int = 5
    """An entry taken over more often than this is not compared again: something in it kills
    workers (a body that exhausts memory, say). It is stored as skipped (``poison``), so it is
    counted, and acknowledged, so it stops taking the fleet down one worker at a time."""
    metrics_listen: HostPort | None = None
    """Where to serve ``/metrics`` and ``/healthz``; ``None`` for nowhere."""


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """A snapshot of one worker's counts (for metrics, logs and tests)."""

    read: int
    """Entries received as new."""
    claimed: int
    """Entries taken over from this or another consumer's pending list."""
    compared: int
    written: int
    """Comparisons whose batch the store accepted."""
    acked: int
    undecodable: int
    """Entries that were not an exchange this worker can read: logged, acknowledged, dropped."""
    poisoned: int
    """Entries delivered more than ``max_deliveries`` times: stored as skipped, not compared."""
    lost: int
    """Pending entries the stream's length cap trimmed before any worker acknowledged them."""
    store_errors: int
    queue_errors: int
    rules_differ: int
    """Exchanges the proxy resolved under another ruleset version than the worker's."""
    queue_up: bool
    store_up: bool
    last_error: str | None


def _query(query: str) -> dict[str, str]:
    """Query parameters as the proxy's rules saw them: first value wins, blanks kept."""
    values: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        values.setdefault(name, value)
    return values


def _headers(headers: Headers) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in headers:
        values.setdefault(name.lower(), value)
    return values


class Worker:
    """Reads, compares, writes and acknowledges, one batch at a time."""

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        stream: RedisStream,
        store: Store,
        rules: RulesHolder,
        redaction: RedactionPolicy,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self._stream = stream
        self._store = store
        self.rules = rules
        """The rules in force (``rules.reload()`` on SIGHUP)."""
        self._redaction = redaction
        self._metrics = metrics
        self._read = 0
        self._claimed = 0
        self._compared = 0
        self._written = 0
        self._acked = 0
        self._undecodable = 0
        self._poisoned = 0
        self._lost = 0
        self._store_errors = 0
        self._queue_errors = 0
        self._rules_differ = 0
        self._queue_up = True
        self._store_up = True
        self._last_error: str | None = None
        self._register(metrics)

    def stats(self) -> WorkerStats:
        return WorkerStats(
            read=self._read,
            claimed=self._claimed,
            compared=self._compared,
            written=self._written,
            acked=self._acked,
            undecodable=self._undecodable,
            poisoned=self._poisoned,
            lost=self._lost,
            store_errors=self._store_errors,
            queue_errors=self._queue_errors,
            rules_differ=self._rules_differ,
            queue_up=self._queue_up,
            store_up=self._store_up,
            last_error=self._last_error,
        )

    # --- the loop -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; the batch in hand is finished (written, acknowledged)."""
        s = self.settings
        loop = asyncio.get_running_loop()
        joined = False
        next_claim = loop.time()
        while not stop.is_set():
            try:
                if not joined:
                    await self._stream.ensure_group(s.group)
                    joined = await self._resume_own(stop)
                    continue
                if loop.time() >= next_claim:
                    await self._claim_pass(stop)
                    next_claim = loop.time() + max(0.05, s.claim_idle / 2)
                    continue
                entries = await self._stream.read(s.group, s.consumer, count=s.batch, block=s.block)
            except GroupMissingError as exc:
                # Redis came back empty (no persistence, or a failover): join again.
                self._queue_failed(exc)
                joined = False
                continue
            except QueueError as exc:
                self._queue_failed(exc)
                await _sleep_unless(stop, 0.5)
                continue
            self._queue_ok()
            if entries:
                self._read += len(entries)
                await self._process(entries, stop)

    async def _resume_own(self, stop: asyncio.Event) -> bool:
        """Process what was delivered to this consumer name and never acknowledged (a restart
        under the same name); ``True`` once none is left."""
        s = self.settings
        while not stop.is_set():
            entries = await self._stream.read(
                s.group, s.consumer, count=s.batch, block=0, own_pending=True
            )
            self._queue_ok()
            if not entries:
                return True
            lost = [entry.id for entry in entries if entry.fields is None]
            entries = (
                *await self._stream.reclaim(s.group, s.consumer, [e.id for e in entries]),
                *(StreamEntry(entry_id, None) for entry_id in lost),
            )
            self._claimed += len(entries)
            if not await self._process(entries, stop, taken_over=True):
                return False
        return False

    async def _claim_pass(self, stop: asyncio.Event) -> None:
        """Take over entries idle longer than ``claim_idle`` on any consumer, scanning the whole
        pending list once."""
        s = self.settings
        cursor = "0-0"
        while not stop.is_set():
            claimed = await self._stream.claim(
                s.group, s.consumer, min_idle=s.claim_idle, count=s.batch, cursor=cursor
            )
            self._queue_ok()
            if claimed.deleted:
                self._lost += len(claimed.deleted)
                log.error(
                    "%d pending entries were trimmed from the stream before any worker stored "
                    "them (raise --stream-maxlen or add workers)",
                    len(claimed.deleted),
                )
            if claimed.entries:
                self._claimed += len(claimed.entries)
                log.info(
                    "claimed %d entries left pending by another consumer", len(claimed.entries)
                )
                await self._process(claimed.entries, stop, taken_over=True)
            cursor = claimed.cursor
            if cursor == "0-0":
                break
        gone = await self._stream.forget_idle_consumers(
            s.group, idle=s.forget_idle, keep=s.consumer
        )
        if gone:
            log.info(
                "removed %d long-silent consumers from group %s: %s",
                len(gone),
                s.group,
                ", ".join(gone),
            )

    # --- one batch ----------------------------------------------------------------------------

    async def _process(
        self, entries: Sequence[StreamEntry], stop: asyncio.Event, *, taken_over: bool = False
    ) -> bool:
        """Compare, write and acknowledge one batch; ``False`` when stopping cut it short (the
        entries stay pending for another worker). Entries ``taken_over`` from a pending list are
        checked for poison first."""
        poison: set[str] = set()
        if taken_over:
            deliveries = await self._deliveries([entry.id for entry in entries])
            poison = {i for i, n in deliveries.items() if n > self.settings.max_deliveries}
        queued: list[QueuedExchange] = []
        poisoned: list[Comparison] = []
        for entry in entries:
            if entry.fields is None:
                self._lost += 1
                continue
            try:
                item = decode_exchange(entry.fields)
            except QueueCodecError as exc:
                # It will never decode: acknowledging it is the only way it stops coming back.
                self._undecodable += 1
                log.error("entry %s dropped: %s", entry.id, exc)
                continue
            if entry.id in poison:
                poisoned.append(self._poisoned_comparison(entry.id, item))
            else:
                queued.append(item)
        comparisons = await asyncio.to_thread(self._compare_all, queued) if queued else []
        comparisons.extend(poisoned)
        if comparisons and not await self._write(comparisons, stop):
            return False
        for comparison in comparisons:
            self._metrics.consume(comparison)
        return await self._ack([entry.id for entry in entries], stop)

    async def _deliveries(self, ids: Sequence[str]) -> dict[str, int]:
        try:
            return await self._stream.deliveries(self.settings.group, self.settings.consumer, ids)
        except QueueError as exc:
            # Unknown counts only delay the poison check to the next take-over.
            self._queue_failed(exc)
            return {}

    def _poisoned_comparison(self, entry_id: str, item: QueuedExchange) -> Comparison:
        self._poisoned += 1
        log.error(
            "entry %s (exchange %s, %s) was taken over more than %d times: stored as skipped, "
            "not compared",
            entry_id,
            item.exchange.id,
            item.exchange.endpoint,
            self.settings.max_deliveries,
        )
        return redact_comparison(
            Comparison(
                exchange=item.exchange,
                verdict=Verdict.SKIPPED,
                ruleset_version=self.rules.current.version,
                reason="poison",
            ),
            self._redaction,
        )

    def _compare_all(self, queued: Sequence[QueuedExchange]) -> list[Comparison]:
        """Runs in a thread: the event loop stays free to answer /metrics and to read."""
        ruleset = self.rules.current
        comparisons: list[Comparison] = []
        for item in queued:
            exchange = item.exchange
            request = exchange.request
            if item.ruleset_version != ruleset.version:
                self._rules_differ += 1
            rules = ruleset.resolve(
                request.method,
                unquote(request.path),
                _query(request.query),
                _headers(request.headers),
            )
            started = time.perf_counter()
            try:
                comparison = compare_and_redact(
                    Job(exchange, rules, ruleset.version), self._redaction
                )
            except Exception:
                log.exception("comparing exchange %s failed", exchange.id)
                comparison = Comparison(
                    exchange=exchange,
                    verdict=Verdict.SKIPPED,
                    ruleset_version=ruleset.version,
                    reason="comparator_error",
                    duration=time.perf_counter() - started,
                )
            comparisons.append(comparison)
        self._compared += len(comparisons)
        return comparisons

    async def _write(self, batch: Sequence[Comparison], stop: asyncio.Event) -> bool:
        pause = 0.1
        give_up_at: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self._store.write(batch)
            except Exception as exc:  # any failure means "not written": keep the entries pending
                self._store_errors += 1
                if self._store_up:
                    log.warning("store write failed, %d entries stay pending: %s", len(batch), exc)
                self._store_up = False
                self._last_error = f"store: {exc}"
            else:
                if not self._store_up:
                    log.info("store is back")
                self._store_up = True
                self._written += len(batch)
                return True
            if stop.is_set():
                give_up_at = give_up_at or loop.time() + self.settings.stop_grace
                if loop.time() >= give_up_at:
                    log.warning(
                        "stopping with %d entries unwritten; another worker will claim them",
                        len(batch),
                    )
                    return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    async def _ack(self, ids: Sequence[str], stop: asyncio.Event) -> bool:
        pause = 0.1
        give_up_at: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            try:
                self._acked += await self._stream.ack(self.settings.group, ids)
            except QueueError as exc:
                self._queue_failed(exc)
            else:
                self._queue_ok()
                return True
            if stop.is_set():
                give_up_at = give_up_at or loop.time() + self.settings.stop_grace
                if loop.time() >= give_up_at:
                    # Written but not acknowledged: the next worker compares them again and the
                    # store's idempotent write keeps one copy.
                    log.warning("stopping with %d written entries unacknowledged", len(ids))
                    return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    def _queue_failed(self, exc: QueueError) -> None:
        self._queue_errors += 1
        if self._queue_up:
            log.warning("queue: %s", exc)
        self._queue_up = False
        self._last_error = f"queue: {exc}"

    def _queue_ok(self) -> None:
        if not self._queue_up:
            log.info("queue: Redis is back")
        self._queue_up = True

    # --- metrics ------------------------------------------------------------------------------

    def _register(self, metrics: Metrics) -> None:
        doc = "Stream entries this worker took, by source (new, or claimed from a pending list)."
        metrics.counter("worker_entries", doc, lambda: float(self._read), source="new")
        metrics.counter("worker_entries", doc, lambda: float(self._claimed), source="claimed")
        metrics.counter(
            "worker_acked_entries",
            "Entries acknowledged after their batch was stored.",
            lambda: float(self._acked),
        )
        metrics.counter(
            "worker_undecodable_entries",
            "Entries that were not a readable exchange (dropped).",
            lambda: float(self._undecodable),
        )
        metrics.counter(
            "worker_lost_entries",
            "Pending entries trimmed by the stream cap before being stored.",
            lambda: float(self._lost),
        )
        metrics.counter(
            "worker_poisoned_entries",
            "Entries taken over too often to compare again: stored as skipped.",
            lambda: float(self._poisoned),
        )
        metrics.counter(
            "worker_ruleset_differs",
            "Exchanges the proxy saw under another ruleset version than the worker's.",
            lambda: float(self._rules_differ),
        )
        metrics.counter("store_errors", "Failed store writes.", lambda: float(self._store_errors))
        metrics.counter(
            "worker_queue_errors", "Failed Redis calls.", lambda: float(self._queue_errors)
        )
        metrics.gauge(
            "store_up", "1 when the last store write succeeded.", lambda: float(self._store_up)
        )
        metrics.gauge(
            "stream_up", "1 when the last Redis call succeeded.", lambda: float(self._queue_up)
        )


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


# --- assembling and serving ---------------------------------------------------------------------

WORKER: web.AppKey[Worker] = web.AppKey("worker", Worker)
METRICS: web.AppKey[Metrics] = web.AppKey("worker-metrics", Metrics)


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def _healthz(request: web.Request) -> web.Response:
    stats = request.app[WORKER].stats()
    ok = stats.queue_up and stats.store_up
    return web.json_response(
        {
            "ok": ok,
            "queue_up": stats.queue_up,
            "store_up": stats.store_up,
            "last_error": stats.last_error,
        },
        status=200 if ok else 503,
    )


@asynccontextmanager
async def open_worker(settings: WorkerSettings) -> AsyncIterator[Worker]:
    """Build a worker: rules loaded, store open, ``/metrics`` served when asked. Raises
    :class:`WorkerStartupError` on bad rules, a bad store or queue URL, or a port in use."""
    base = settings.base
    try:
        rules = RulesHolder(base.rules)
    except RulesError as exc:
        raise WorkerStartupError(str(exc)) from None
    try:
        store = store_from_settings(base)
        await store.aopen()
    except StoreError as exc:
        raise WorkerStartupError(f"--store {base.store}: {exc}") from None
    async with AsyncExitStack() as stack:
        stack.push_async_callback(store.aclose)
        try:
            stream = RedisStream(base.queue, settings.stream)
        except ValueError as exc:
            raise WorkerStartupError(f"--queue {base.queue}: {exc}") from None
        stack.push_async_callback(stream.aclose)
        metrics = Metrics()
        worker = Worker(
            settings,
            stream=stream,
            store=store,
            rules=rules,
            redaction=RedactionPolicy.from_settings(base),
            metrics=metrics,
        )
        background = TaskSet("worker")
        stack.push_async_callback(background.aclose)
        if base.rules is not None:
            background.spawn(rules.watch(), name="rules-watch")
        background.spawn(Trimmer().run(), name="memory-trim")
        if settings.metrics_listen is not None:
            app = web.Application()
            app[WORKER] = worker
            app[METRICS] = metrics
            app.router.add_get("/metrics", _metrics)
            app.router.add_get("/healthz", _healthz)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            where = settings.metrics_listen
            try:
                await web.TCPSite(runner, where.host, where.port, reuse_address=True).start()
            except OSError as exc:
                raise WorkerStartupError(
                    f"--metrics-listen {where}: {exc.strerror or exc}"
                ) from None
        yield worker


async def serve_worker(settings: WorkerSettings) -> WorkerStats:
    """``shadowproxy worker``: work until SIGINT or SIGTERM; SIGHUP reloads the rules."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    async with open_worker(settings) as worker:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, worker.rules.reload)
        log.info(
            "worker %s in group %s on %s (stream %s) -> store %s",
            settings.consumer,
            settings.group,
            _safe_url(settings.base.queue),
            settings.stream,
            settings.base.store,
        )
        try:
            await worker.run(stop)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        stats = worker.stats()
        log.info(
            "worker stopped: %d compared, %d written, %d acknowledged",
            stats.compared,
            stats.written,
            stats.acked,
        )
        return stats


def _safe_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    return f"{scheme}{sep}***@{host}" if at and creds else url
