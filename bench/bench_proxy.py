"""Proxy throughput and latency against its references, all measured in one run (issue 6).

    .venv/bin/python bench/bench_proxy.py [--quick] [--seconds 10] [--hang-seconds 60]
                                          [--rounds 3] [--json out.json]
    .venv/bin/python bench/bench_proxy.py --combine run1.json run2.json ...   # medians
    .venv/bin/python bench/bench_proxy.py --profile DIR                       # py-spy, no table

It starts, each bound to 127.0.0.1 and stopped again at the end (nginx with its own prefix and
pid file in a temp dir):

- nginx upstreams serving static AniLibria-like JSON: ``/v3/title`` (≈ 2 KB) and
  ``/v3/title/updates`` (≈ 330 KB) as the primary, and a mismatching variant as the shadow;
- two delayable shadows (``bench/upstream.py``, each its own process): one answering in 200 ms
  for nginx's mirror, one whose delay is switched at run time (0 ms, 200 ms, hung);
- the references: direct to the primary; nginx 1.22 with ``mirror`` to the fast and to the 200 ms
  shadow; a minimal aiohttp pass-through (``bench/passthrough.py``, one process, no mirror);
- ``shadowproxy run`` with comparison and storage on (``rules/anilibria.yaml``, a SQLite store in
  the temp dir), ``--workers 1`` and ``--workers 2``.

Each configuration is driven by wrk (``--latency``) at 1 and 32 connections for both bodies; the
CPU its own process tree used is read from /proc (cores, and µs per request: steadier than req/s on
a shared machine). For shadowproxy the admin ``/metrics`` is read before and after each run:
comparisons per second, exchanges shed (``queue_full``, ``sampled_out``, ``serving_busy``) and
skipped because the shadow was busy; before each run the comparator queue is allowed to drain. The
slow-shadow target is measured on one proxy whose shadow's delay alternates 0 / 200 ms between
short runs (``--rounds``), so the machine's drifting load hits both sides alike. Two diagnostic
configurations show where the cost goes (mirror off; a shadow identical to the primary, which the
comparator settles by byte equality). Then the memory phase: shadowproxy (default caps) under
large-body load while its shadow hangs, RSS summed over its process tree from /proc: idle, start,
peak and after the load. Last, the comparator alone: CPU time of compare and of compare + redact on
the benchmark's own pairs, in this process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    PYTHON,
    ROOT,
    SHADOWPROXY,
    Footprint,
    Processes,
    cpu_seconds,
    footprint,
    http_get,
    machine,
    owned_processes,
    run_wrk,
    scrape,
    total,
    wait_http,
)
from upstream import NGINX, free_port, render_nginx, write_bodies

TARGETS = {"small": "/v3/title?id=8500", "large": "/v3/title/updates?limit=52&page=1"}
PACED = "small, paced"
"""The light-load run: the small body on one connection that waits 5 ms between requests."""
PACED_SCRIPT = ROOT / "bench" / "wrk" / "paced.lua"
RULES = ROOT / "rules" / "anilibria.yaml"
DIRECT = "direct"
MIRROR_FAST = "nginx mirror, fast shadow"
MIRROR_SLOW = "nginx mirror, 200 ms shadow"
AIOHTTP_REF = "aiohttp pass-through"


def sp_name(workers: int) -> str:
    return f"shadowproxy -w{workers}, fast shadow"


@dataclass(slots=True)
class Row:
    """One wrk run of one configuration."""

    config: str
    connections: int
    body: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    compared_per_s: float | None = None
    shed_per_s: float | None = None
    busy_per_s: float | None = None
    compare_ms: float | None = None
    """Mean comparator time per exchange over the run (from the duration histogram)."""
    cpu_cores: float | None = None
    """CPU used by the configuration's own process tree (nginx, the proxy and its comparators;
    for ``direct``, the upstream nginx), in cores."""
    cpu_us_per_req: float | None = None
    """The same per client request: steadier than req/s on a shared machine."""


@dataclass(slots=True)
class Memory:
    """The memory phase: shadowproxy's process tree while its shadow hangs."""

    hang_seconds: float
    idle_mb: float = 0.0
    start_mb: float = 0.0
    peak_mb: float = 0.0
    end_mb: float = 0.0
    peak_fds: int = 0
    peak_serving_mb: float = 0.0
    """The serving process alone at its peak (the rest is the comparator process)."""
    peak_queue_mb: float = 0.0
    """Body bytes held by the comparator queue at its peak (``shadowproxy_queue_bytes``)."""
    peak_in_flight: float = 0.0
    """Shadow calls in flight at the peak, each holding its request and the primary's body."""
    rps_before: float = 0.0
    rps_hang: float = 0.0
    rps_after: float = 0.0
    p99_before: float = 0.0
    p99_hang: float = 0.0
    timeline: list[tuple[float, float, str]] = field(default_factory=list)


@dataclass(slots=True)
class Result:
    machine: str
    started: str
    command: str
    seconds: float
    rows: list[Row] = field(default_factory=list)
    memory: Memory | None = None
    capacity: list[Capacity] = field(default_factory=list)

    def row(self, config: str, connections: int, body: str) -> Row | None:
        for row in self.rows:
            if (row.config, row.connections, row.body) == (config, connections, body):
                return row
        return None


# --- the stack ------------------------------------------------------------------------------------


class Stack:
    """Upstreams and references, started once for the whole run."""

    def __init__(
        self, tmp: Path, processes: Processes, *, nginx_workers: str, with_references: bool = True
    ) -> None:
        self.tmp = tmp
        self.processes = processes
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (tmp / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        write_bodies(tmp / "bodies")
        self.ports = {
            name: free_port()
            for name in ("primary", "shadow", "mirror_fast", "mirror_slow", "passthrough")
        }
        values = {
            "prefix": str(tmp),
            "bodies": str(tmp / "bodies"),
            "workers": nginx_workers,
            "primary_port": str(self.ports["primary"]),
            "shadow_port": str(self.ports["shadow"]),
            "mirror_fast_port": str(self.ports["mirror_fast"]),
            "mirror_slow_port": str(self.ports["mirror_slow"]),
        }
        self.hang_port = self._delayed("hang-shadow", 0)
        self.slow_port = self._delayed("slow-shadow", 200) if with_references else 0
        values["slow_shadow_port"] = str(self.slow_port)
        for conf in ("upstreams", "mirror") if with_references else ("upstreams",):
            (tmp / f"{conf}.conf").write_text(render_nginx(f"{conf}.conf", values))
            nginx = processes.start(
                f"nginx-{conf}",
                [NGINX, "-p", str(tmp), "-c", str(tmp / f"{conf}.conf"), "-g", "daemon off;"],
            )
            wait_http(self.url("primary" if conf == "upstreams" else "mirror_fast"), 10, nginx)
        if not with_references:
            return
        passthrough = processes.start(
            "passthrough",
            [
                PYTHON,
                str(ROOT / "bench" / "passthrough.py"),
                "--upstream",
                self.url("primary"),
                "--port",
                str(self.ports["passthrough"]),
            ],
        )
        wait_http(self.url("passthrough"), 20, passthrough)

    def _delayed(self, name: str, delay_ms: int) -> int:
        port = free_port()
        process = self.processes.start(
            name,
            [
                PYTHON,
                str(ROOT / "bench" / "upstream.py"),
                "--port",
                str(port),
                "--delay-ms",
                str(delay_ms),
            ],
        )
        wait_http(f"http://127.0.0.1:{port}/__bench/delay?ms={delay_ms}", 20, process)
        return port

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def pids(self) -> dict[str, int]:
        """Root pids of the processes started so far, by name."""
        return self.processes.pids

    def set_hang(self, delay_ms: int) -> None:
        http_get(f"http://127.0.0.1:{self.hang_port}/__bench/delay?ms={delay_ms}")


class Proxy:
    """One ``shadowproxy run`` subprocess with its admin URL."""

    def __init__(
        self,
        stack: Stack,
        *,
        name: str,
        shadow: str,
        workers: int,
        extra: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.stack = stack
        self.port = free_port()
        admin_port = free_port()
        self.admin = f"http://127.0.0.1:{admin_port}"
        self.url = f"http://127.0.0.1:{self.port}"
        db = stack.tmp / f"{name}.db"
        argv = [
            SHADOWPROXY,
            "run",
            "--primary",
            stack.url("primary"),
            "--shadow",
            shadow,
            "--listen",
            f"127.0.0.1:{self.port}",
            "--admin-listen",
            f"127.0.0.1:{admin_port}",
            "--rules",
            str(RULES),
            "--store",
            f"sqlite:///{db}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            *extra,
        ]
        self.process = stack.processes.start(name, argv, env=env)
        wait_http(self.admin + "/healthz", 60, self.process)
        wait_http(self.url + TARGETS["small"], 30, self.process)

    @property
    def pid(self) -> int:
        return self.process.pid

    def metrics(self) -> dict[str, float]:
        samples = scrape(self.admin)
        duration_sum = total(samples, "shadowproxy_comparison_duration_seconds_sum")
        return {
            "compared": total(samples, "shadowproxy_comparisons_total"),
            "queue_full": total(samples, "shadowproxy_mirror_skips_total", reason="queue_full"),
            "sampled_out": total(samples, "shadowproxy_mirror_skips_total", reason="sampled_out"),
            "shadow_busy": total(samples, "shadowproxy_mirror_skips_total", reason="shadow_busy"),
            "serving_busy": total(samples, "shadowproxy_mirror_skips_total", reason="serving_busy"),
            "queue_depth": total(samples, "shadowproxy_queue_depth"),
            "busy": total(samples, "shadowproxy_comparisons_in_progress"),
            "share": total(samples, "shadowproxy_mirror_share"),
            "duration_sum": duration_sum,
            "duration_count": total(samples, "shadowproxy_comparison_duration_seconds_count"),
            "tasks": total(samples, "shadowproxy_asyncio_tasks"),
            "queue_bytes": total(samples, "shadowproxy_queue_bytes"),
            "in_flight": total(samples, "shadowproxy_shadow_in_flight"),
        }

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until the comparator queue is empty (a previous run's backlog is done) and the
        governor mirrors everything again (it recovers within about 2 s of a saturated run)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.metrics()
            if not m["queue_depth"] and not m["busy"] and m["share"] >= 1.0:
                return
            time.sleep(0.25)

    def stop(self) -> None:
        self.stack.processes.stop(self.process, grace=40.0)


# --- measuring ------------------------------------------------------------------------------------


def one_run(
    config: str,
    url: str,
    connections: int,
    body: str,
    seconds: float,
    *,
    proxy: Proxy | None = None,
    pid: int | None = None,
) -> Row:
    """One wrk run, with the proxy's CPU and (for shadowproxy) its /metrics deltas."""
    if proxy is not None:
        proxy.settle()
    before = proxy.metrics() if proxy is not None else None
    cpu_before, clock = (cpu_seconds(pid) if pid else 0.0), time.monotonic()
    load = run_wrk(url, connections, seconds, script=PACED_SCRIPT if body == PACED else None)
    row = Row(config, connections, body, load.rps, load.p50_ms, load.p99_ms, load.errors)
    if pid:
        row.cpu_cores = (cpu_seconds(pid) - cpu_before) / (time.monotonic() - clock)
        row.cpu_us_per_req = row.cpu_cores / load.rps * 1e6 if load.rps else None
    if proxy is not None and before is not None:
        after = proxy.metrics()
        row.compared_per_s = (after["compared"] - before["compared"]) / seconds
        shed = ("queue_full", "sampled_out", "serving_busy")
        row.shed_per_s = sum(after[key] - before[key] for key in shed) / seconds
        row.busy_per_s = (after["shadow_busy"] - before["shadow_busy"]) / seconds
        count = after["duration_count"] - before["duration_count"]
        if count:
            row.compare_ms = (after["duration_sum"] - before["duration_sum"]) / count * 1000
    return row


def measure(
    result: Result,
    config: str,
    base: str,
    seconds: float,
    *,
    proxy: Proxy | None = None,
    pid: int | None = None,
    plan: tuple[tuple[str, int], ...] = (
        ("small", 1),
        ("small", 32),
        ("large", 1),
        ("large", 32),
        (PACED, 1),
    ),
) -> None:
    run_wrk(base + TARGETS["small"], 8, min(2.0, seconds))  # warm pools, comparators, caches
    for body, connections in plan:
        target = TARGETS[body.partition(",")[0]]
        row = one_run(config, base + target, connections, body, seconds, proxy=proxy, pid=pid)
        result.rows.append(row)
        print(_format_row(row), flush=True)


def alt_name(workers: int, delay_ms: int) -> str:
    return f"shadowproxy -w{workers}, shadow {delay_ms} ms (alternating)"


def alternate(result: Result, stack: Stack, workers: int, seconds: float, rounds: int) -> None:
    """Fast against 200 ms shadow on one proxy: the shadow's delay is switched between short
    runs (0, 200, 0, 200, ...), so the machine's drifting load hits both sides alike."""
    proxy = Proxy(
        stack,
        name=f"sp-alt-w{workers}",
        shadow=f"http://127.0.0.1:{stack.hang_port}",
        workers=workers,
    )
    try:
        run_wrk(proxy.url + TARGETS["small"], 8, 2.0)
        for body in ("small", "large"):
            runs: dict[int, list[Row]] = {0: [], 200: []}
            for _ in range(rounds):
                for delay in (0, 200):
                    stack.set_hang(delay)
                    runs[delay].append(
                        one_run(
                            alt_name(workers, delay),
                            proxy.url + TARGETS[body],
                            32,
                            body,
                            seconds,
                            proxy=proxy,
                            pid=proxy.pid,
                        )
                    )
            for rows in runs.values():
                row = median_row(rows)
                result.rows.append(row)
                print(_format_row(row), flush=True)
    finally:
        stack.set_hang(0)
        proxy.stop()


def median_row(rows: list[Row]) -> Row:
    """The median of each figure of several runs of one configuration (errors are summed)."""
    first = rows[0]
    return Row(
        first.config,
        first.connections,
        first.body,
        rps=statistics.median(r.rps for r in rows),
        p50_ms=statistics.median(r.p50_ms for r in rows),
        p99_ms=statistics.median(r.p99_ms for r in rows),
        errors=sum(r.errors for r in rows),
        compared_per_s=_median_opt([r.compared_per_s for r in rows]),
        shed_per_s=_median_opt([r.shed_per_s for r in rows]),
        busy_per_s=_median_opt([r.busy_per_s for r in rows]),
        compare_ms=_median_opt([r.compare_ms for r in rows]),
        cpu_cores=_median_opt([r.cpu_cores for r in rows]),
        cpu_us_per_req=_median_opt([r.cpu_us_per_req for r in rows]),
    )


DIAGNOSTICS = (
    # Where the cost goes: forwarding alone, then mirroring with the comparator's byte-equality
    # fast path (the shadow is the primary itself: no parse, no redaction, nothing stored).
    ("shadowproxy -w1, mirror off (--sample 0)", "primary", ("--sample", "0")),
    ("shadowproxy -w1, identical shadow", "primary", ()),
)


def diagnose(result: Result, stack: Stack, seconds: float) -> None:
    """The diagnostic configurations, at 1 and 32 connections, small body, and 32 large."""
    for index, (name, shadow, extra) in enumerate(DIAGNOSTICS):
        proxy = Proxy(
            stack, name=f"sp-diag-{index}", shadow=stack.url(shadow), workers=1, extra=extra
        )
        try:
            measure(
                result,
                name,
                proxy.url,
                seconds,
                proxy=proxy,
                pid=proxy.pid,
                plan=(("small", 1), ("small", 32), ("large", 32)),
            )
        finally:
            proxy.stop()


def memory_phase(
    stack: Stack, hang_seconds: float, load_seconds: float, env: dict[str, str] | None = None
) -> Memory:
    """Large bodies at 32 connections: fast shadow, then hanging, then fast again; RSS sampled."""
    memory = Memory(hang_seconds=hang_seconds)
    stack.set_hang(0)
    proxy = Proxy(
        stack,
        name="sp-memory",
        shadow=f"http://127.0.0.1:{stack.hang_port}",
        workers=1,
        env=env,
    )
    try:
        time.sleep(1.0)
        memory.idle_mb = footprint(proxy.pid).rss_mb
        samples: list[tuple[float, Footprint, str]] = []
        phase = ["before"]
        stop = threading.Event()
        started = time.monotonic()

        levels: list[tuple[float, float]] = []

        def sample() -> None:
            while not stop.is_set():
                samples.append((time.monotonic() - started, footprint(proxy.pid), phase[0]))
                with contextlib.suppress(OSError):
                    m = proxy.metrics()
                    levels.append((m["queue_bytes"], m["in_flight"]))
                stop.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        url = proxy.url + TARGETS["large"]
        before = run_wrk(url, 32, load_seconds)
        memory.start_mb = samples[-1][1].rss_mb
        stack.set_hang(3_600_000)
        phase[0] = "hang"
        during = run_wrk(url, 32, hang_seconds)
        stack.set_hang(0)
        phase[0] = "after"
        after = run_wrk(url, 32, load_seconds)
        phase[0] = "idle"
        proxy.settle()
        time.sleep(min(10.0, load_seconds))
        stop.set()
        sampler.join()
        memory.end_mb = footprint(proxy.pid).rss_mb
        memory.peak_mb = max(f.rss_mb for _, f, _ in samples)
        memory.peak_serving_mb = max(f.root_rss_mb for _, f, _ in samples)
        memory.peak_fds = max(f.fds for _, f, _ in samples)
        memory.peak_queue_mb = max((q for q, _ in levels), default=0.0) / 2**20
        memory.peak_in_flight = max((n for _, n in levels), default=0.0)
        memory.rps_before, memory.rps_hang, memory.rps_after = before.rps, during.rps, after.rps
        memory.p99_before, memory.p99_hang = before.p99_ms, during.p99_ms
        memory.timeline = [(round(t, 1), round(f.rss_mb, 1), p) for t, f, p in samples[::4]]
    finally:
        proxy.stop()
        stack.set_hang(0)
    return memory


def run(args: argparse.Namespace) -> Result:
    result = Result(
        machine=machine(),
        started=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        command="bench/bench_proxy.py " + " ".join(sys.argv[1:]),
        seconds=args.seconds,
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    try:
        with owned_processes(tmp) as processes:
            stack = Stack(tmp, processes, nginx_workers=args.nginx_workers)
            print(_header(), flush=True)
            pids = stack.pids
            measure(result, DIRECT, stack.url("primary"), args.seconds, pid=pids["nginx-upstreams"])
            mirror = pids["nginx-mirror"]
            measure(result, MIRROR_FAST, stack.url("mirror_fast"), args.seconds, pid=mirror)
            measure(result, MIRROR_SLOW, stack.url("mirror_slow"), args.seconds, pid=mirror)
            measure(
                result, AIOHTTP_REF, stack.url("passthrough"), args.seconds, pid=pids["passthrough"]
            )
            for workers in args.workers:
                proxy = Proxy(
                    stack, name=f"sp-w{workers}", shadow=stack.url("shadow"), workers=workers
                )
                try:
                    name = sp_name(workers)
                    measure(result, name, proxy.url, args.seconds, proxy=proxy, pid=proxy.pid)
                finally:
                    proxy.stop()
                alternate(result, stack, workers, args.alternate_seconds, args.rounds)
            if args.diagnostics:
                diagnose(result, stack, args.seconds)
            if args.hang_seconds > 0:
                result.memory = memory_phase(stack, args.hang_seconds, args.seconds)
        result.capacity = comparator_capacity()
    finally:
        if args.keep:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


# --- the comparator alone -------------------------------------------------------------------------


@dataclass(slots=True)
class Capacity:
    """One comparator call on this machine's one core, in-process (no queue, no IPC)."""

    body: str
    compare_ms: float
    compare_redact_ms: float
    ipc_ms: float
    """Pickling the exchange and unpickling the result: what the hand-off to a comparator adds
    per exchange (an endpoint's rules travel once, then by number)."""
    verdict: str


def comparator_capacity(repeat: float = 2.0) -> list[Capacity]:
    """Time ``compare`` and ``compare_and_redact`` on the benchmark's own mismatching pairs."""
    import pickle

    from multidict import CIMultiDict, MultiDict
    from upstream import bench_bodies

    from shadowproxy.comparators import Job, compare_and_redact
    from shadowproxy.compare.comparator import compare
    from shadowproxy.model import CapturedRequest, CapturedResponse, Exchange
    from shadowproxy.rules import load_ruleset
    from shadowproxy.settings import Settings
    from shadowproxy.store.redaction import RedactionPolicy

    ruleset = load_ruleset(RULES)
    policy = RedactionPolicy.from_settings(Settings())  # as the proxy runs: cut to what is stored
    out: list[Capacity] = []
    bodies = {b.name: b for b in bench_bodies()}
    for name, target in TARGETS.items():
        body = bodies[name]
        path, _, query = target.partition("?")
        params: MultiDict[str] = MultiDict(
            (k, v) for k, _, v in (p.partition("=") for p in query.split("&"))
        )
        rules = ruleset.resolve("GET", path, params, CIMultiDict())

        def response(data: bytes) -> CapturedResponse:
            headers = (("Content-Type", "application/json"), ("Content-Length", str(len(data))))
            return CapturedResponse(200, headers, data, 0.001)

        request = CapturedRequest("GET", path, query, (("Host", "bench"),), b"", time.time())
        exchange = Exchange(
            "0" * 32, rules.name or path, request, response(body.primary), response(body.shadow)
        )
        job = Job(exchange, rules, ruleset.version)

        def timed(call: Callable[[], object]) -> float:
            # CPU time, not wall time: other processes on the shared cores do not inflate it.
            call()
            count, started = 0, time.process_time()
            while time.process_time() - started < repeat:
                call()
                count += 1
            return (time.process_time() - started) / count * 1000

        result = compare_and_redact(job, policy)
        packed = pickle.dumps(result)
        out.append(
            Capacity(
                body=name,
                compare_ms=timed(partial(compare, exchange, rules, ruleset.version)),
                compare_redact_ms=timed(partial(compare_and_redact, job, policy)),
                ipc_ms=timed(
                    partial(_pickle_round_trip, (exchange, 0, job.ruleset_version), packed)
                ),
                verdict=result.verdict.value,
            )
        )
    return out


def _pickle_round_trip(job: object, packed: bytes) -> None:
    import pickle

    pickle.dumps(job)
    pickle.loads(packed)  # noqa: S301 - our own bytes, pickled by this benchmark


# --- profiling ------------------------------------------------------------------------------------


def profile(args: argparse.Namespace) -> None:
    """Record py-spy stacks of shadowproxy -w1 under 32-connection load, per body; print the top."""
    py_spy = shutil.which("py-spy") or str(ROOT / ".venv" / "bin" / "py-spy")
    out = Path(args.profile)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-proxy-profile-"))
    try:
        with owned_processes(tmp) as processes:
            stack = Stack(tmp, processes, nginx_workers=args.nginx_workers)
            proxy = Proxy(
                stack,
                name="sp-profile",
                shadow=stack.url("shadow"),
                workers=1,
                extra=tuple(args.profile_args.split()),
            )
            try:
                run_wrk(proxy.url + TARGETS["small"], 8, 2)
                for body, connections in (("small", 1), ("small", 32), ("large", 32)):
                    proxy.settle()
                    raw = out / f"shadowproxy-{body}-{connections}c.txt"
                    record = processes.start(
                        f"py-spy-{body}",
                        [
                            py_spy,
                            "record",
                            "--pid",
                            str(proxy.pid),
                            "--subprocesses",
                            "--format",
                            "raw",
                            "--rate",
                            "200",
                            "--duration",
                            str(int(args.seconds)),
                            "-o",
                            str(raw),
                        ],
                    )
                    time.sleep(1.0)
                    load = run_wrk(proxy.url + TARGETS[body], connections, args.seconds - 2)
                    record.wait(args.seconds + 30)
                    print(
                        f"\n## {body}, {connections} c: {load.rps:,.0f} req/s under py-spy; "
                        f"stacks in {raw}"
                    )
                    print_profile(raw)
            finally:
                proxy.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_FRAME = re.compile(r".+ \(.+:\d+\)$")


def print_profile(raw: Path, top: int = 25) -> None:
    """Self and inclusive sample shares by function from py-spy's collapsed stacks, per process
    kind: the serving process and the comparator."""
    by_kind: dict[str, tuple[dict[str, int], dict[str, int], list[int]]] = {}
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        # Process frames hold command lines, which may contain ";": keep real frames only.
        functions = [f for f in stack.split(";") if _FRAME.fullmatch(f)]
        kind = "comparator" if "serve (shadowproxy/comparators.py" in stack else "serving"
        own, inclusive, samples = by_kind.setdefault(kind, ({}, {}, [0]))
        samples[0] += count
        if functions:
            own[functions[-1]] = own.get(functions[-1], 0) + count
        for name in set(functions):
            inclusive[name] = inclusive.get(name, 0) + count
    everything = sum(s[0] for _, _, s in by_kind.values()) or 1
    for kind, (own, inclusive, samples) in sorted(by_kind.items()):
        print(f"\n### {kind} process: {samples[0]} samples ({samples[0] / everything:.0%})")
        print("self time (share of this process's samples):")
        for name, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
            print(f"  {count / samples[0]:6.1%}  {name}")
        print("inclusive, shadowproxy frames:")
        ours = {k: v for k, v in inclusive.items() if "shadowproxy/" in k and "cli/" not in k}
        for name, count in sorted(ours.items(), key=lambda kv: -kv[1])[:top]:
            print(f"  {count / samples[0]:6.1%}  {name}")


# --- reporting ------------------------------------------------------------------------------------


def _header() -> str:
    return (
        "| configuration | conns | body | req/s | p50 ms | p99 ms | errors | compared/s "
        "| shed/s | shadow busy/s | compare ms | CPU cores | CPU µs/req |\n"
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )


def _opt(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _format_row(row: Row) -> str:
    return (
        f"| {row.config} | {row.connections} | {row.body} | {row.rps:,.0f} | {row.p50_ms:.2f} | "
        f"{row.p99_ms:.2f} | {row.errors} | {_opt(row.compared_per_s, ',.0f')} | "
        f"{_opt(row.shed_per_s, ',.0f')} | {_opt(row.busy_per_s, ',.0f')} | "
        f"{_opt(row.compare_ms, '.2f')} | {_opt(row.cpu_cores, '.2f')} | "
        f"{_opt(row.cpu_us_per_req, ',.0f')} |"
    )


@dataclass(frozen=True, slots=True)
class Ratio:
    name: str
    value: float | None
    target: str
    met: bool | None
    detail: str


def ratios(result: Result, workers: int) -> list[Ratio]:
    """The issue's targets for ``shadowproxy -w<workers>``, computed from one run."""
    fast = sp_name(workers)
    alt_fast, alt_slow = alt_name(workers, 0), alt_name(workers, 200)
    out: list[Ratio] = []

    def get(config: str, c: int, body: str) -> Row:
        row = result.row(config, c, body)
        if row is None:
            raise KeyError((config, c, body))
        return row

    def add(name: str, target: str, compute: Callable[[], tuple[float, bool, str]]) -> None:
        try:
            value, met, detail = compute()
        except (KeyError, ZeroDivisionError):
            out.append(Ratio(name, None, target, None, "not measured"))
            return
        out.append(Ratio(name, value, target, met, detail))

    for body in ("small", "large"):

        def slow_rps(body: str = body) -> tuple[float, bool, str]:
            a, b = get(alt_fast, 32, body), get(alt_slow, 32, body)
            change = b.rps / a.rps - 1
            return change, abs(change) <= 0.05 or change > 0, f"{b.rps:,.0f} vs {a.rps:,.0f}"

        def slow_p99(body: str = body) -> tuple[float, bool, str]:
            a, b = get(alt_fast, 32, body), get(alt_slow, 32, body)
            change = b.p99_ms / a.p99_ms - 1
            return change, change <= 0.05, f"{b.p99_ms:.2f} vs {a.p99_ms:.2f} ms"

        add(f"200 ms shadow, {body}, 32 c: req/s change", "within 5 %", slow_rps)
        add(f"200 ms shadow, {body}, 32 c: p99 change", "within 5 %", slow_p99)

    def nginx_loss() -> tuple[float, bool, str]:
        a, b = get(MIRROR_FAST, 32, "small"), get(MIRROR_SLOW, 32, "small")
        return b.rps / a.rps - 1, True, f"{b.rps:,.0f} vs {a.rps:,.0f} (reference)"

    add("nginx mirror, 200 ms shadow, small, 32 c: req/s change", "(≈ −99 %)", nginx_loss)

    def vs(ref: str, body: str, floor: float) -> Callable[[], tuple[float, bool, str]]:
        def compute() -> tuple[float, bool, str]:
            a, b = get(ref, 32, body), get(fast, 32, body)
            return b.rps / a.rps, b.rps / a.rps >= floor, f"{b.rps:,.0f} vs {a.rps:,.0f}"

        return compute

    add("small, 32 c: req/s ÷ aiohttp pass-through", "≥ 1×", vs(AIOHTTP_REF, "small", 1.0))
    add("small, 32 c: req/s ÷ nginx mirror", "≥ 0.5×", vs(MIRROR_FAST, "small", 0.5))

    def added(attr: str, limit: float, body: str) -> Callable[[], tuple[float, bool, str]]:
        def compute() -> tuple[float, bool, str]:
            a, b = get(DIRECT, 1, body), get(fast, 1, body)
            delta = getattr(b, attr) - getattr(a, attr)
            return delta, delta <= limit, f"{getattr(b, attr):.3f} − {getattr(a, attr):.3f} ms"

        return compute

    def compared_share(body: str) -> Callable[[], tuple[float, bool, str]]:
        def compute() -> tuple[float, bool, str]:
            row = get(fast, 1, body)
            assert row.compared_per_s is not None
            share = row.compared_per_s / row.rps
            return share, True, f"{row.compared_per_s:,.0f} of {row.rps:,.0f} req/s compared"

        return compute

    # Closed loop: the next request the moment the answer arrives, so the proxy's loop is this
    # client's bottleneck and the governor sheds mirroring. Paced: light load, all mirrored.
    def over_passthrough(attr: str) -> Callable[[], tuple[float, bool, str]]:
        # Paced, every process sleeps between requests and pays its wake-up: the reference for
        # what a Python hop adds here is the pass-through's own paced latency.
        def compute() -> tuple[float, bool, str]:
            a, b = get(AIOHTTP_REF, 1, PACED), get(fast, 1, PACED)
            delta = getattr(b, attr) - getattr(a, attr)
            return delta, True, f"{getattr(b, attr):.3f} − {getattr(a, attr):.3f} ms"

        return compute

    for body, label in (("small", "small, 1 c"), (PACED, "light load, 1 c paced")):
        add(f"{label}: added p50 over direct (ms)", "≤ 0.25 ms", added("p50_ms", 0.25, body))
        add(f"{label}: added p99 over direct (ms)", "≤ 1 ms", added("p99_ms", 1.0, body))
        add(f"{label}: share of requests compared", "(info)", compared_share(body))
    add(
        "light load, 1 c paced: p50 over the aiohttp pass-through's (ms)",
        "(info)",
        over_passthrough("p50_ms"),
    )
    add(
        "light load, 1 c paced: p99 over the aiohttp pass-through's (ms)",
        "(info)",
        over_passthrough("p99_ms"),
    )
    add("large, 32 c: req/s ÷ aiohttp pass-through", "≥ 0.8×", vs(AIOHTTP_REF, "large", 0.8))

    def cpu_per_request(body: str) -> Callable[[], tuple[float, bool, str]]:
        def compute() -> tuple[float, bool, str]:
            a, b = get(AIOHTTP_REF, 32, body), get(fast, 32, body)
            assert a.cpu_us_per_req is not None
            assert b.cpu_us_per_req is not None
            ratio = b.cpu_us_per_req / a.cpu_us_per_req
            return ratio, True, f"{b.cpu_us_per_req:,.0f} vs {a.cpu_us_per_req:,.0f} µs"

        return compute

    for body in ("small", "large"):
        add(f"{body}, 32 c: CPU per request ÷ pass-through's", "(info)", cpu_per_request(body))

    def comparisons() -> tuple[float, bool, str]:
        row = get(fast, 32, "large")
        assert row.compared_per_s is not None
        per_process = row.compared_per_s / workers  # --comparators 1 per serving process
        shed = row.shed_per_s or 0.0
        return (
            per_process,
            per_process >= 150,
            f"{row.compared_per_s:,.0f}/s compared over {workers} comparator process(es), "
            f"{shed:,.0f}/s shed and counted, {row.compare_ms or 0:.1f} ms each",
        )

    add("large, 32 c: comparisons/s per comparator process", "≥ 150/s", comparisons)
    return out


def report(result: Result, workers: list[int]) -> str:
    lines = [f"{result.started}; {result.machine}", f"Command: `{result.command}`", "", _header()]
    lines += [_format_row(row) for row in result.rows]
    for w in workers:
        lines += ["", f"Targets for `--workers {w}`:", ""]
        lines += ["| ratio | value | target | met | from |", "|---|---:|---|---|---|"]
        for r in ratios(result, w):
            value = "—" if r.value is None else _ratio_text(r)
            unjudged = r.met is None or r.target.startswith("(info)")
            met = "—" if unjudged else ("yes" if r.met else "**no**")
            lines.append(f"| {r.name} | {value} | {r.target} | {met} | {r.detail} |")
    lines += _capacity_lines(result.capacity)
    if result.memory is not None:
        m = result.memory
        lines += [
            "",
            f"Memory, shadowproxy -w1 tree (serving + comparator), large body, 32 c, shadow hung "
            f"{m.hang_seconds:g} s: idle {m.idle_mb:.0f} MB, start of load {m.start_mb:.0f} MB, "
            f"peak {m.peak_mb:.0f} MB (serving process {m.peak_serving_mb:.0f} MB; comparator "
            f"queue up to {m.peak_queue_mb:.0f} MB of bodies, up to {m.peak_in_flight:.0f} shadow "
            f"calls in flight), "
            f"end (load over, queue drained) {m.end_mb:.0f} MB; "
            f"peak fds {m.peak_fds}. Client req/s before / during / after the hang: "
            f"{m.rps_before:,.0f} / {m.rps_hang:,.0f} / {m.rps_after:,.0f}; p99 "
            f"{m.p99_before:.1f} / {m.p99_hang:.1f} ms.",
        ]
    return "\n".join(lines)


def _capacity_lines(capacity: list[Capacity]) -> list[str]:
    if not capacity:
        return []
    lines = [
        "",
        "Comparator alone, CPU time in this process (anilibria.yaml, the benchmark's pairs):",
        "",
        "| body | verdict | compare ms | compare + redact ms | per core/s "
        "| job + result pickling ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for c in capacity:
        lines.append(
            f"| {c.body} | {c.verdict} | {c.compare_ms:.2f} | {c.compare_redact_ms:.2f} | "
            f"{1000 / c.compare_redact_ms:,.0f} | {c.ipc_ms:.2f} |"
        )
    return lines


def _ratio_text(r: Ratio) -> str:
    assert r.value is not None
    if "change" in r.name:
        return f"{r.value:+.1%}"
    if "(ms)" in r.name:
        return f"{r.value:+.3f} ms"
    if "per comparator" in r.name:
        return f"{r.value:,.0f}/s"
    if "share of" in r.name:
        return f"{r.value:.0%}"
    return f"{r.value:.2f}×"


# --- combining runs -------------------------------------------------------------------------------


def load_result(path: Path) -> Result:
    data: dict[str, Any] = json.loads(path.read_text())
    memory = Memory(**data["memory"]) if data.get("memory") else None
    capacity = [Capacity(**c) for c in data.get("capacity", [])]
    return Result(
        machine=data["machine"],
        started=data["started"],
        command=data["command"],
        seconds=data["seconds"],
        rows=[Row(**row) for row in data["rows"]],
        memory=memory,
        capacity=capacity,
    )


def combine(paths: list[Path], workers: list[int]) -> str:
    """Median of each cell and of each run's own ratios."""
    results = [load_result(p) for p in paths]
    keys: list[tuple[str, int, str]] = []
    for result in results:
        for row in result.rows:
            if (row.config, row.connections, row.body) not in keys:
                keys.append((row.config, row.connections, row.body))
    median = Result(
        machine=results[0].machine,
        started=", ".join(r.started for r in results),
        command=" ; ".join(r.command for r in results),
        seconds=results[0].seconds,
    )
    for key in keys:
        median.rows.append(median_row([r for res in results if (r := res.row(*key)) is not None]))
    lines = [f"Medians of {len(results)} runs ({median.started})", "", _header()]
    lines += [_format_row(row) for row in median.rows]
    for w in workers:
        per_run = [ratios(r, w) for r in results]
        lines += ["", f"Targets for `--workers {w}`: each run's ratio, and their median", ""]
        lines += ["| ratio | runs | median | target | met (median) |", "|---|---|---:|---|---|"]
        for i, first in enumerate(per_run[0]):
            values = [run[i] for run in per_run]
            measured = [v for v in values if v.value is not None]
            if not measured:
                continue
            mid = statistics.median(v.value for v in measured if v.value is not None)
            shown = Ratio(first.name, mid, first.target, None, "")
            runs = ", ".join(_ratio_text(v) for v in measured)
            met = _met(first, mid)
            lines.append(
                f"| {first.name} | {runs} | {_ratio_text(shown)} | {first.target} | {met} |"
            )
    capacities = [c for r in results for c in r.capacity]
    median_capacity = [
        Capacity(
            body=body,
            compare_ms=statistics.median(c.compare_ms for c in group),
            compare_redact_ms=statistics.median(c.compare_redact_ms for c in group),
            ipc_ms=statistics.median(c.ipc_ms for c in group),
            verdict=group[0].verdict,
        )
        for body in dict.fromkeys(c.body for c in capacities)
        if (group := [c for c in capacities if c.body == body])
    ]
    lines += _capacity_lines(median_capacity)
    memories = [r.memory for r in results if r.memory is not None]
    for index, m in enumerate(memories, 1):
        lines.append(
            f"\nMemory, run {index} (shadow hung {m.hang_seconds:g} s): idle {m.idle_mb:.0f} MB, "
            f"start {m.start_mb:.0f}, peak {m.peak_mb:.0f} (serving process "
            f"{m.peak_serving_mb:.0f}; queue {m.peak_queue_mb:.0f} MB of bodies, "
            f"{m.peak_in_flight:.0f} shadow calls in flight), end {m.end_mb:.0f} MB; client req/s "
            f"before/during/after {m.rps_before:,.0f}/{m.rps_hang:,.0f}/{m.rps_after:,.0f}; "
            f"p99 before/during {m.p99_before:.1f}/{m.p99_hang:.1f} ms."
        )
    return "\n".join(lines)


def _median_opt(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _met(ratio: Ratio, value: float) -> str:
    name, target = ratio.name, ratio.target
    if target.startswith("("):
        return "reference" if "reference" in target or "99" in target else "—"
    if "req/s change" in name:
        ok = value >= -0.05
    elif "p99 change" in name:
        ok = value <= 0.05
    elif "(ms)" in name:
        ok = value <= float(target.split()[1])
    elif "per comparator" in name:
        ok = value >= 150
    else:
        ok = value >= float(target.split()[1].rstrip("×"))
    return "yes" if ok else "**no**"


def _iter_json(result: Result) -> Iterator[tuple[str, Any]]:
    yield from asdict(result).items()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s runs, 15 s hang")
    parser.add_argument("--seconds", type=float, default=10.0, help="per wrk run (default 10)")
    parser.add_argument("--hang-seconds", type=float, default=60.0, help="0 skips the phase")
    parser.add_argument(
        "--alternate-seconds", type=float, default=5.0, help="per run of the 0/200 ms alternation"
    )
    parser.add_argument("--rounds", type=int, default=3, help="0/200 ms alternation rounds")
    parser.add_argument("--workers", default="1,2", help="shadowproxy --workers values")
    parser.add_argument("--nginx-workers", default="auto")
    parser.add_argument(
        "--no-diagnostics",
        dest="diagnostics",
        action="store_false",
        help="skip the -w1 mirror-off and identical-shadow runs",
    )
    parser.add_argument("--json", type=Path, help="also write the run's rows here")
    parser.add_argument("--combine", type=Path, nargs="+", help="medians of earlier --json runs")
    parser.add_argument("--profile", metavar="DIR", help="py-spy shadowproxy -w1; no table")
    parser.add_argument("--profile-args", default="", help="extra shadowproxy flags when profiling")
    parser.add_argument("--print-profile", type=Path, nargs="+", help="summarise py-spy raw files")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    args = parser.parse_args()
    args.workers = [int(w) for w in args.workers.split(",")]
    if args.quick:
        args.seconds = 3.0
        args.hang_seconds = min(args.hang_seconds, 15.0)
        args.alternate_seconds, args.rounds = 2.0, 1
    if args.print_profile:
        for raw in args.print_profile:
            print(f"\n## {raw}")
            print_profile(raw)
        return
    if args.combine:
        print(combine(args.combine, args.workers))
        return
    if args.profile:
        profile(args)
        return
    result = run(args)
    print()
    print(report(result, args.workers))
    if args.json:
        args.json.write_text(json.dumps(dict(_iter_json(result)), indent=1))


if __name__ == "__main__":
    main()
