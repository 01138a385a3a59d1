"""Assembling and running the proxy: the runtime, the two listeners.

::

    Runtime (one per process)          traffic server (open_ingress)        admin app
    ├─ Metrics                         ├─ primary Backend  ─► Forwarder     ├─ /metrics, /healthz
    ├─ RulesHolder (+ file watch)      ├─ shadow Backend   ─► Mirror        ├─ /api/v1/... (api.py)
    ├─ Store + StoreWriter             └─ Ingress.handle  (every request)   └─ / dashboard
    └─ Pipeline (queue, comparators) ◄── Mirror delivers exchanges

Start-up fails fast with :class:`StartupError` (one line: what and where) on bad rules, a bad store
URL or a port in use. Shutdown stops accepting, lets in-flight requests finish, then drains the
shadow calls, the comparator queue and the store writer, each within a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace

from aiohttp import web

from shadowproxy.admin.app import FleetView, create_admin_app
from shadowproxy.control import ControlPlane, open_control_plane, watch_control
from shadowproxy.fleet import running_fleet, signal_members, supervise
from shadowproxy.memory import Trimmer
from shadowproxy.metrics import Metrics
from shadowproxy.model import Exchange
from shadowproxy.pipeline import Pipeline
from shadowproxy.proxy.backend import Backend, BackendConfig, open_backend
from shadowproxy.proxy.breaker import BreakerState, CircuitBreaker
from shadowproxy.proxy.endpoint import EndpointNamer
from shadowproxy.proxy.forward import Forwarder
from shadowproxy.proxy.governor import Governor
from shadowproxy.proxy.ingress import Ingress
from shadowproxy.proxy.listener import FIELD_MAX, Listener
from shadowproxy.proxy.mirror import Mirror
from shadowproxy.proxy.policy import MirrorPolicy
from shadowproxy.proxy.refusals import RefusalLog
from shadowproxy.queue import StreamPublisher
from shadowproxy.rules import EndpointRules, RulesError
from shadowproxy.rules.holder import RulesHolder
from shadowproxy.settings import HostPort, Settings
from shadowproxy.store import store_from_settings
from shadowproxy.store.contract import Store, StoreError, StoreURLError
from shadowproxy.store.redaction import RedactionPolicy
from shadowproxy.store.writer import StoreWriter
from shadowproxy.tasks import TaskSet

log = logging.getLogger(__name__)

SHUTDOWN_DEADLINE = 10.0


class StartupError(Exception):
    """Start-up cannot go on; the message is one line saying what and where."""


@dataclass(frozen=True, slots=True)
class Runtime:
    """What lives as long as the process and both apps share."""

    settings: Settings
    metrics: Metrics
    rules: RulesHolder
    store: Store
    writer: StoreWriter
    pipeline: Pipeline
    publisher: StreamPublisher | None = None
    control: ControlPlane | None = None
    """Runtime switches (local, or fleet-wide with ``--control``)."""
    """Set with ``--queue``: exchanges go to the Redis stream for ``shadowproxy worker``."""

    @property
    def deliver(self) -> Callable[[Exchange, EndpointRules, str], bool]:
        """Where the mirror hands finished exchanges: the stream, or the local comparators."""
        return self.publisher.submit if self.publisher is not None else self.pipeline.submit

    @property
    def has_room(self) -> Callable[[int, int], bool]:
        """Asked before each shadow call: would its exchange fit where it will be delivered?"""
        return self.publisher.has_room if self.publisher is not None else self.pipeline.has_room

    async def drain_comparisons(self, timeout: float) -> bool:
        """Wait until handed-over exchanges left this process (published, or compared)."""
        if self.publisher is not None:
            return await self.publisher.drain(timeout)
        return await self.pipeline.drain(timeout)


@asynccontextmanager
async def open_runtime(settings: Settings, *, processes: int = 1) -> AsyncIterator[Runtime]:
    """``processes``: serving processes on this machine (``--workers``), for the local share
    of the shadow rate cap while Redis is away."""
    metrics = Metrics()
    try:
        rules = RulesHolder(settings.rules)
    except RulesError as exc:
        raise StartupError(str(exc)) from None
    try:
        store = store_from_settings(settings)
    except StoreURLError as exc:
        raise StartupError(str(exc)) from None  # it names --store and the URL itself
    writer = StoreWriter(
        store,
        batch=settings.store_batch,
        flush_interval=settings.store_flush_interval,
        buffer=settings.store_buffer,
        spool_dir=settings.spool_dir,
        spool_max_bytes=settings.spool_max_bytes,
    )
    pipeline = Pipeline(
        queue_size=settings.queue_size,
        comparators=settings.comparators,
        sinks=(metrics.consume, writer.submit),
        queue_bytes=settings.queue_bytes_max,
        redaction=RedactionPolicy.from_settings(settings),
        metrics=metrics,
    )
    publisher = None
    if settings.queue:
        try:
            publisher = StreamPublisher(
                settings.queue,
                maxlen=settings.stream_maxlen,
                buffer=settings.queue_size,
                buffer_bytes=settings.queue_bytes_max,
                metrics=metrics,
            )
        except ValueError as exc:
            raise StartupError(f"--queue {settings.queue}: {exc}") from None
    _watch_writer(metrics, writer)
    _watch_rules(metrics, rules)
    metrics.gauge(
        "asyncio_tasks", "Tasks alive on the serving event loop.", lambda: len(asyncio.all_tasks())
    )
    background = TaskSet("runtime")
    try:
        await writer.start()
    except StoreError as exc:
        raise StartupError(f"--store {settings.store}: {exc}") from None
    try:
        if publisher is not None:
            await publisher.start()
        else:
            await pipeline.start()
        if settings.rules is not None:
            background.spawn(rules.watch(), name="rules-watch")
        background.spawn(Trimmer().run(), name="memory-trim")
        async with open_control_plane(settings, processes=processes) as control:
            watch_control(metrics, control)
            yield Runtime(settings, metrics, rules, store, writer, pipeline, publisher, control)
    finally:
        await background.aclose()
        if publisher is not None:
            await publisher.aclose(SHUTDOWN_DEADLINE / 2)
        await pipeline.aclose(SHUTDOWN_DEADLINE / 2)
        await writer.aclose(SHUTDOWN_DEADLINE / 2)
        with contextlib.suppress(Exception):
            await store.aclose()


def _watch_rules(metrics: Metrics, rules: RulesHolder) -> None:
    doc = "Rule file reloads by result."
    metrics.counter("rules_reloads", doc, lambda: float(rules.reloads_ok), result="ok")
    metrics.counter("rules_reloads", doc, lambda: float(rules.reloads_failed), result="failed")
    metrics.gauge(
        "rules_reload_failing",
        "1 while the rule file on disk is invalid.",
        lambda: float(rules.last_error is not None),
    )


def _watch_writer(metrics: Metrics, writer: StoreWriter) -> None:
    metrics.gauge(
        "store_up", "1 when the last store write succeeded.", lambda: float(writer.stats().store_up)
    )
    metrics.gauge(
        "store_buffered_records",
        "Comparisons waiting in memory for the store.",
        lambda: float(writer.stats().buffered),
    )
    metrics.gauge(
        "store_spooled_records",
        "Comparisons waiting in the disk spool.",
        lambda: float(writer.stats().spooled_records),
    )
    metrics.counter(
        "store_written_records",
        "Comparisons written to the store.",
        lambda: float(writer.stats().written),
    )
    metrics.counter(
        "store_dropped_records",
        "Comparisons dropped: buffer and spool full.",
        lambda: float(writer.stats().dropped),
    )
    metrics.counter("store_errors", "Failed store writes.", lambda: float(writer.stats().errors))


def _watch_mirror(metrics: Metrics, mirror: Mirror) -> None:
    metrics.gauge("shadow_in_flight", "Shadow calls in flight.", lambda: float(mirror.in_flight))
    metrics.gauge(
        "shadow_circuit_open",
        "1 while the shadow's circuit breaker pauses mirroring (0.5 while probing).",
        lambda: {BreakerState.CLOSED: 0.0, BreakerState.HALF_OPEN: 0.5}.get(
            mirror.breaker.state, 1.0
        ),
    )
    metrics.counter(
        "shadow_circuit_opened",
        "Times the shadow's circuit breaker opened.",
        lambda: float(mirror.breaker.opened),
    )


def _watch_backend(metrics: Metrics, backend: Backend) -> None:
    client = backend.client
    levels: dict[str, Callable[[], float]] = {
        "busy": lambda: float(client.busy),
        "idle": lambda: float(client.idle),
    }
    for state, read in levels.items():
        metrics.gauge(
            "backend_connections",
            "Connections to a backend: carrying an exchange (busy) or pooled (idle).",
            read,
            backend=backend.name,
            state=state,
        )
    metrics.counter(
        "backend_connections_opened",
        "Connections opened to a backend (near the request count: it does not keep them alive).",
        lambda: float(client.opened),
        backend=backend.name,
    )


# --- the traffic listener -------------------------------------------------------------------------


@asynccontextmanager
async def open_ingress(runtime: Runtime) -> AsyncIterator[Ingress]:
    """The backends' sessions, the mirror and the handler built on them; on exit, shadow calls
    still running end (or are cut) before the sessions close."""
    s = runtime.settings
    primary_config = BackendConfig(
        name="primary",
        base_url=s.primary,
        connect_timeout=s.connect_timeout,
        read_timeout=s.primary_timeout,
        tls_verify=s.tls_verify,
    )
    shadow_config = BackendConfig(
        name="shadow",
        base_url=s.shadow,
        connect_timeout=min(s.connect_timeout, s.shadow_timeout),
        read_timeout=s.shadow_timeout,
        total_timeout=s.shadow_timeout,
        max_connections=s.shadow_max_in_flight,
        tls_verify=s.tls_verify,
    )
    governor = Governor(
        lag_max=s.mirror_lag_max,
        pressure_max=s.mirror_cpu_pressure_max,
        metrics=runtime.metrics,
    )
    async with open_backend(primary_config) as primary, open_backend(shadow_config) as shadow:
        mirror = Mirror(
            shadow,
            max_in_flight=s.shadow_max_in_flight,
            capture_max=s.capture_max,
            deliver=runtime.deliver,
            has_room=runtime.has_room,
            governor=governor,
            metrics=runtime.metrics,
            breaker=CircuitBreaker(failures=s.breaker_failures, cooldown=s.breaker_cooldown),
            rate_cap=runtime.control.rate_cap if runtime.control else None,
        )
        _watch_mirror(runtime.metrics, mirror)
        _watch_backend(runtime.metrics, primary)
        _watch_backend(runtime.metrics, shadow)
        probes = TaskSet("governor")
        probes.spawn(governor.run())
        try:
            yield Ingress(
                forwarder=Forwarder(primary, capture_max=s.capture_max),
                mirror=mirror,
                policy=MirrorPolicy(
                    sample=s.sample, body_max=s.mirror_body_max, control=runtime.control
                ),
                namer=EndpointNamer(cap=s.endpoint_cap),
                rules=runtime.rules,
                metrics=runtime.metrics,
                shadow_header=s.shadow_header,
                body_max=s.request_body_max,
                body_timeout=s.client_body_timeout,
            )
        finally:
            await probes.aclose()
            cut = await mirror.aclose(timeout=s.shadow_timeout)
            if cut:
                log.warning("shutdown: %d shadow calls were cut", cut)


def traffic_listener(ingress: Ingress, metrics: Metrics) -> Listener:
    """The traffic listener: the proxy's own HTTP/1.1 server calling :meth:`Ingress.handle` for
    every request, and aiohttp's low-level server for WebSocket upgrades (:meth:`Ingress.relay`).
    """
    refusals = RefusalLog()
    upgrades = web.Server(
        ingress.relay,
        max_field_size=FIELD_MAX,
        max_line_size=FIELD_MAX,
        logger=refusals,
        access_log=None,
    )
    listener = Listener(ingress.handle, upgrades)
    metrics.counter(
        "refused_requests",
        "Malformed requests refused by the HTTP parser (never forwarded).",
        lambda: float(listener.refused + refusals.refused),
    )
    return listener


# --- running --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunningProxy:
    """A started proxy: where it listens, and its runtime."""

    runtime: Runtime
    traffic_url: str
    admin_url: str
    ingress: Ingress

    @property
    def store(self) -> Store:
        return self.runtime.store

    async def drain(self, timeout: float = 10.0) -> bool:
        """Wait until mirrored requests are compared and written; ``False`` on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if await self.ingress.mirror.wait(timeout):
            return False
        if not await self.runtime.drain_comparisons(max(0.0, deadline - loop.time())):
            return False
        writer = self.runtime.writer
        while loop.time() < deadline:
            stats = writer.stats()
            if not stats.buffered and not stats.spooled_records:
                return True
            await asyncio.sleep(0.02)
        return False


async def _start_site(runner: web.BaseRunner, where: HostPort, flag: str) -> str:
    async def bind() -> tuple[str, int]:
        await web.TCPSite(runner, where.host, where.port, reuse_address=True).start()
        host, port = runner.addresses[-1][:2]
        return host, port

    return await _bound(bind(), where, flag)


async def _bound(bind: Awaitable[tuple[str, int]], where: HostPort, flag: str) -> str:
    """The URL a listener was bound at, or a StartupError naming the flag."""
    try:
        host, port = await bind
    except OSError as exc:
        cause = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise StartupError(f"{flag} {where}: {cause or exc}") from None
    shown = "127.0.0.1" if host in {"0.0.0.0", "::"} else host  # noqa: S104 - display only
    return f"http://{shown}:{port}"


@asynccontextmanager
async def running(
    settings: Settings, *, reuse_port: bool = False, processes: int = 1
) -> AsyncIterator[RunningProxy]:
    """Start everything; on exit shut down gracefully."""
    async with AsyncExitStack() as stack:
        runtime = await stack.enter_async_context(open_runtime(settings, processes=processes))
        # Exited after the listener's cleanup below: in-flight requests finish first.
        ingress = await stack.enter_async_context(open_ingress(runtime))
        admin_app = create_admin_app(runtime)
        traffic = traffic_listener(ingress, runtime.metrics)
        stack.push_async_callback(traffic.aclose, SHUTDOWN_DEADLINE)
        admin = web.AppRunner(admin_app, access_log=None)
        await admin.setup()
        stack.push_async_callback(admin.cleanup)
        where = settings.listen
        traffic_url = await _bound(
            traffic.start(where.host, where.port, reuse_port=reuse_port), where, "--listen"
        )
        admin_url = await _start_site(admin, settings.admin_listen, "--admin-listen")
        yield RunningProxy(runtime, traffic_url, admin_url, ingress)


async def serve(
    settings: Settings,
    *,
    reuse_port: bool = False,
    processes: int = 1,
    on_ready: Callable[[str], object] | None = None,
) -> None:
    """``shadowproxy run``: serve until SIGINT or SIGTERM; SIGHUP reloads the rules.

    With ``workers > 1`` this process supervises that many serving processes (see
    :mod:`shadowproxy.fleet`). ``on_ready`` receives the admin URL once listening.
    """
    if settings.workers > 1:
        await _serve_fleet(settings)
        return
    async with running(settings, reuse_port=reuse_port, processes=processes) as proxy:
        log.info(
            "traffic on %s -> primary %s, mirrored to %s",
            proxy.traffic_url,
            settings.primary,
            settings.shadow,
        )
        log.info("admin on %s (metrics %s/metrics)", proxy.admin_url, proxy.admin_url)
        if on_ready is not None:
            on_ready(proxy.admin_url)
        await _until_stopped(reload=proxy.runtime.rules.reload)


async def _until_stopped(reload: Callable[[], object]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        await stop.wait()
    finally:
        log.info("shutting down: finishing in-flight requests, flushing comparisons")
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)


async def _serve_fleet(settings: Settings) -> None:
    """The supervisor: N serving processes, one admin listener whose /metrics sums theirs."""
    async with AsyncExitStack() as stack:
        runtime = await stack.enter_async_context(
            open_runtime(replace(settings, workers=1), processes=settings.workers)
        )
        fleet, port = await stack.enter_async_context(running_fleet(settings))
        view = FleetView(
            peers=lambda: fleet.admin_urls,
            reload=lambda: signal_members(fleet, signal.SIGHUP),
            expected=settings.workers,
        )
        admin = web.AppRunner(create_admin_app(runtime, fleet=view), access_log=None)
        await admin.setup()
        stack.push_async_callback(admin.cleanup)
        admin_url = await _start_site(admin, settings.admin_listen, "--admin-listen")
        supervisor = TaskSet("fleet")
        supervisor.spawn(supervise(fleet, port), name="fleet-supervisor")
        stack.push_async_callback(supervisor.aclose)
        log.info(
            "%d workers on %s:%d -> primary %s, mirrored to %s; admin on %s",
            settings.workers,
            settings.listen.host,
            port,
            settings.primary,
            settings.shadow,
            admin_url,
        )

        def reload() -> None:
            runtime.rules.reload()
            signal_members(fleet, signal.SIGHUP)

        await _until_stopped(reload=reload)
