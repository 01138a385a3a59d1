"""``shadowproxy demo``: both demo backends, the proxy in front of them, traffic, and a summary.

::

    traffic driver ─► proxy (traffic listener) ─► legacy service   (answers the driver)
                               │                 └► rewrite        (mirrored, compared)
                               └─ admin listener: dashboard, /api/v1, /metrics

The run opens with a burst of requests, waits until every comparison is stored, prints what the
store says per endpoint, then keeps sending light traffic (so the dashboard stays alive) until
Ctrl-C, SIGTERM or the ``duration`` runs out, and prints the final summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import socket
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from aiohttp import web

import shadowproxy
from shadowproxy.demo.backends import PLANTED, legacy_app, rewrite_app
from shadowproxy.demo.catalogue import build_catalogue
from shadowproxy.demo.traffic import TrafficStats, drive
from shadowproxy.settings import HostPort, Settings

if TYPE_CHECKING:
    from shadowproxy.server import RunningProxy

DEFAULT_STORE = "sqlite:///shadowproxy-demo.db"
"""A file in the working directory, apart from the one ``shadowproxy run`` uses."""

DEFAULT_LISTEN = HostPort("127.0.0.1", 8080)
DEFAULT_ADMIN_LISTEN = HostPort("127.0.0.1", 9090)

_DRAIN_TIMEOUT = 10.0
_TOP_FIELDS = 3
_SLOW_MS = 250.0
"""A shadow p50 past this marks the planted slow endpoint as seen."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """How to run the demo."""

    duration: float | None = None
    """Seconds before the demo stops by itself; ``None`` runs until Ctrl-C or SIGTERM."""
    listen: HostPort | None = None
    """Traffic listener; ``None`` takes 127.0.0.1:8080, or any free port when that is taken."""
    admin_listen: HostPort | None = None
    """Admin listener; ``None`` takes 127.0.0.1:9090, or any free port when that is taken."""
    store: str = DEFAULT_STORE
    rules: Path | None = None
    """Rule file; :func:`packaged_rules` is the usual choice."""
    rate: float = 5.0
    """Requests per second after the opening burst."""
    burst: int = 400
    """Requests in the opening burst (cut short when the duration runs out)."""
    concurrency: int = 4


def packaged_rules() -> Path | None:
    """The AniLibria rule file shipped with shadowproxy, when this installation has it."""
    # `rules/` at the repository root links here, so a checkout and an install agree.
    package = Path(shadowproxy.__file__).resolve().parent
    candidate = package / "rules" / "examples" / "anilibria.yaml"
    return candidate if candidate.is_file() else None


def _port_or_any(where: HostPort | None, default: HostPort) -> HostPort:
    """``where`` when given; else ``default`` if it can be bound right now, else a free port."""
    if where is not None:
        return where
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((default.host, default.port))
        except OSError:
            return HostPort(default.host, 0)
    return default


@asynccontextmanager
async def _serving(app: web.Application) -> AsyncIterator[str]:
    """Run ``app`` on a free 127.0.0.1 port; yield its base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` while inside. The first signal asks for a clean stop and
    gives its default back, so a second Ctrl-C interrupts a shutdown that takes too long."""
    loop = asyncio.get_running_loop()
    installed: set[signal.Signals] = set()

    def first(sig: signal.Signals) -> None:
        stop.set()
        if sig in installed:
            loop.remove_signal_handler(sig)
            installed.discard(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, first, sig)
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # not the main thread, or no signals on this platform
        installed.add(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _traffic_line(stats: TrafficStats) -> str:
    statuses = ", ".join(f"{count} x {status}" for status, count in stats.by_status.items())
    errors = f", {stats.errors} without answer" if stats.errors else ""
    return f"sent {stats.sent} requests in {stats.elapsed:.1f} s ({statuses}{errors})"


async def _summary_table(proxy: RunningProxy, since: float) -> list[str]:
    """The per-endpoint summary the store holds since ``since``, as text lines."""
    store = proxy.store
    summaries = sorted(await store.summary(since=since), key=lambda s: (-s.compared, s.endpoint))
    top: defaultdict[str, list[str]] = defaultdict(list)
    for field in sorted(await store.fields(since=since), key=lambda f: (-f.count, f.template)):
        if len(top[field.endpoint]) < _TOP_FIELDS:
            top[field.endpoint].append(f"{field.template or '/'} ({field.kind}) x{field.count}")
    header = (
        "endpoint",
        "compared",
        "mismatches",
        "shadow errors",
        "p50 ms primary/shadow",
        "top differing fields",
    )
    rows = [
        (
            s.endpoint,
            str(s.compared),
            f"{s.mismatches} ({s.mismatch_rate:.0%})",
            str(s.shadow_errors),
            f"{s.primary_latency_ms[0]:.0f} / {s.shadow_latency_ms[0]:.0f}",
            ", ".join(top.get(s.endpoint, [])) or "-",
        )
        for s in summaries
    ]
    if not rows:
        return ["(nothing compared yet)"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])]
        cells += [row[i].rjust(widths[i]) for i in range(1, len(widths))]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    compared = sum(s.compared for s in summaries)
    matches = sum(s.matches for s in summaries)
    lines.append(
        f"total: {compared} compared, {matches} matched ({matches / compared:.0%})"
        if compared
        else "total: nothing compared"
    )
    return lines


async def _planted_report(proxy: RunningProxy, since: float) -> list[str]:
    """Each planted difference, marked by whether this run's comparisons show it."""
    summaries = await proxy.store.summary(since=since)
    fields = await proxy.store.fields(since=since)
    lines = ["planted in the rewrite (seen: reported above; accepted: the rule file excuses it):"]
    for planted in PLANTED:
        rows = [s for s in summaries if planted.endpoint in s.endpoint]
        if planted.slow:
            seen = any(s.shadow_latency_ms[0] >= _SLOW_MS for s in rows)
        elif planted.shadow_error:
            seen = any(s.shadow_errors for s in rows)
        else:
            seen = any(
                planted.field in f.template
                and planted.kind in f.kind
                and planted.endpoint in f.endpoint
                for f in fields
            )
        lines.append(f"  {'seen    ' if seen else 'accepted'}  {planted.description}")
    return lines


async def run_demo(
    options: DemoOptions, out: TextIO = sys.stdout, stop: asyncio.Event | None = None
) -> int:
    """Run the demo until ``stop`` is set, a signal arrives or the duration ends; exit code 0.

    Raises :class:`shadowproxy.server.StartupError` when the proxy cannot start.
    """
    # Imported here so the backends and the driver stay usable without the proxy's stack.
    from shadowproxy.server import running

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    began = loop.time()
    # Counters are per minute: start at the minute's beginning so the first bucket counts.
    since = math.floor(time.time() / 60) * 60

    def remaining() -> float | None:
        if options.duration is None:
            return None
        return max(0.0, began + options.duration - loop.time())

    catalogue = build_catalogue()
    with _stop_on_signals(stop):
        async with (
            _serving(legacy_app(catalogue)) as legacy_url,
            _serving(rewrite_app(catalogue)) as rewrite_url,
        ):
            settings = Settings(
                primary=legacy_url,
                shadow=rewrite_url,
                listen=_port_or_any(options.listen, DEFAULT_LISTEN),
                admin_listen=_port_or_any(options.admin_listen, DEFAULT_ADMIN_LISTEN),
                store=options.store,
                rules=options.rules,
                redact_query=("session",),  # AniLibria's user token rides in the query string
                log_level="warning",
                # Backends, traffic and proxy share this one loop, so its backlog says nothing
                # about the proxy; the governor would shed the very requests the demo shows.
                mirror_lag_max=0.0,
            )
            async with running(settings) as proxy:
                say("shadowproxy demo: an AniLibria-like catalogue API and its rewrite")
                say(f"  legacy (primary)   {legacy_url}")
                say(f"  rewrite (shadow)   {rewrite_url}")
                say(f"  proxy              {proxy.traffic_url}   (clients get the legacy answers)")
                say(f"  rules              {options.rules or 'none: bodies compared exactly'}")
                say(f"  store              {options.store}")
                say()
                say(f"sending up to {options.burst} requests, {options.concurrency} at a time ...")
                stats = await drive(
                    proxy.traffic_url,
                    duration=remaining(),
                    requests=options.burst,
                    concurrency=options.concurrency,
                    stop=stop,
                    catalogue=catalogue,
                    tour_first=True,
                )
                say(_traffic_line(stats))
                await proxy.drain(timeout=_DRAIN_TIMEOUT)
                say()
                for line in await _summary_table(proxy, since):
                    say(line)
                say()
                for line in await _planted_report(proxy, since):
                    say(line)
                say()
                say(f"dashboard  {proxy.admin_url}/")
                say(f"API        {proxy.admin_url}/api/v1/summary")
                say(f"metrics    {proxy.admin_url}/metrics")
                say(f"try        curl '{proxy.traffic_url}/v3/title?code=one-piece'")
                left = remaining()
                if not stop.is_set() and (left is None or left > 0):
                    until = "Ctrl-C to stop" if left is None else f"for {left:.0f} s more"
                    say(f"still sending about {options.rate:g} requests/s, {until}")
                    light = await drive(
                        proxy.traffic_url,
                        duration=left,
                        requests=None,
                        rate=options.rate,
                        concurrency=2,
                        seed=2,
                        stop=stop,
                        catalogue=catalogue,
                    )
                    await proxy.drain(timeout=_DRAIN_TIMEOUT)
                    say(_traffic_line(light))
                    say()
                    say("final summary:")
                    for line in await _summary_table(proxy, since):
                        say(line)
    say("demo stopped")
    return 0


async def serve_backend(which: str, listen: HostPort) -> int:
    """Serve one demo backend (``legacy`` or ``rewrite``) on ``listen`` until SIGINT/SIGTERM."""
    app = legacy_app() if which == "legacy" else rewrite_app()
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    stop = asyncio.Event()
    try:
        await web.TCPSite(runner, listen.host, listen.port).start()
        print(f"demo {which} backend on http://{listen}", flush=True)
        with _stop_on_signals(stop):
            await stop.wait()
    finally:
        await runner.cleanup()
    return 0
