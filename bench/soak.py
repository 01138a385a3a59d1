"""Soak: minutes of steady traffic, mismatching bodies, a shadow that hangs mid-run (issue 7).

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 200] [--hang-seconds 60] [--interval 5]

It starts, on 127.0.0.1, nginx serving AniLibria-like JSON as the primary, the delayable shadow of
``bench/upstream.py`` answering with mismatching variants (so every comparison is parsed, walked
and stored or counted), and ``shadowproxy run`` with its default caps (``rules/anilibria.yaml``, a
SQLite store). wrk drives a steady rate (a Lua ``delay()`` per connection) over a realistic mix:
70 % ``/v3/title?id=…`` (≈ 2 KB), 20 % ``/v3/title/list`` (≈ 60 KB), 10 % ``/v3/title/updates``
(≈ 330 KB). Half-way through, the shadow hangs (answers nothing) for ``--hang-seconds``.

Every ``--interval`` seconds it samples the shadowproxy process tree: RSS and open file
descriptors from /proc, and from the admin ``/metrics`` the asyncio task count
(``shadowproxy_asyncio_tasks``), requests forwarded, comparisons, skips, queue depth and shadow
calls in flight. It reports start, peak and end of each, the open descriptors by kind, and RSS
early and late in the run in the same state (the comparator queue full, since RSS follows the
bodies it holds): equal means no growth with request count.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_proxy import Proxy, Stack
from harness import (
    fd_kinds,
    footprint,
    machine,
    owned_processes,
    parse_wrk,
    scrape,
    total,
    wrk_argv,
)

LUA = """\
-- A steady mix of catalogue requests; each connection waits {delay_ms} ms between requests.
local paths = {{}}
for i = 1, 7 do paths[#paths + 1] = "title" end
for i = 1, 2 do paths[#paths + 1] = "list" end
paths[#paths + 1] = "updates"
math.randomseed(7)
request = function()
  local kind = paths[math.random(#paths)]
  if kind == "title" then
    return wrk.format("GET", "/v3/title?id=" .. math.random(8000, 9999))
  elseif kind == "list" then
    return wrk.format("GET", "/v3/title/list?id_list=" .. math.random(1, 500))
  end
  return wrk.format("GET", "/v3/title/updates?limit=52&page=" .. math.random(1, 40))
end
delay = function() return {delay_ms} end
"""


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    phase: str
    rss_mb: float
    fds: int
    tasks: float
    forwarded: float
    compared: float
    skipped: float
    queue: float
    in_flight: float


def sample(proxy: Proxy, started: float, phase: str) -> Sample:
    fp = footprint(proxy.pid)
    m = scrape(proxy.admin)
    return Sample(
        at=time.monotonic() - started,
        phase=phase,
        rss_mb=fp.rss_mb,
        fds=fp.fds,
        tasks=total(m, "shadowproxy_asyncio_tasks"),
        forwarded=total(m, "shadowproxy_backend_request_duration_seconds_count", backend="primary")
        + total(m, "shadowproxy_backend_errors_total", backend="primary"),
        compared=total(m, "shadowproxy_comparisons_total"),
        skipped=total(m, "shadowproxy_mirror_skips_total"),
        queue=total(m, "shadowproxy_queue_depth"),
        in_flight=total(m, "shadowproxy_shadow_in_flight"),
    )


def soak(args: argparse.Namespace) -> list[Sample]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    samples: list[Sample] = []
    try:
        with owned_processes(tmp) as processes:
            stack = Stack(tmp, processes, nginx_workers="1", with_references=False)
            proxy = Proxy(
                stack, name="sp-soak", shadow=f"http://127.0.0.1:{stack.hang_port}", workers=1
            )
            try:
                connections = args.connections
                delay_ms = max(1, round(1000 * connections / args.rate))
                script = tmp / "soak.lua"
                script.write_text(LUA.format(delay_ms=delay_ms))
                seconds = args.minutes * 60
                hang_at = max(0.0, seconds / 2 - args.hang_seconds / 2)
                hang_end = hang_at + args.hang_seconds
                started = time.monotonic()
                samples.append(sample(proxy, started, "idle"))
                wrk = processes.start(
                    "wrk-soak",
                    wrk_argv(proxy.url, connections, seconds, script=script),
                )
                phase = "steady"
                kinds_at_start: dict[str, int] = {}
                print(
                    "|   t s | phase | RSS MB | fds | tasks | forwarded | compared | skipped "
                    "| queue | shadow in flight |"
                )
                print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
                while wrk.poll() is None:
                    now = time.monotonic() - started
                    if (
                        phase == "steady"
                        and args.hang_seconds
                        and now >= hang_at
                        and now < hang_end
                    ):
                        stack.set_hang(3_600_000)
                        phase = "hang"
                    elif phase == "hang" and now >= hang_end:
                        stack.set_hang(0)
                        phase = "recovered"
                    s = sample(proxy, started, phase)
                    samples.append(s)
                    if not kinds_at_start and s.at >= 20:
                        kinds_at_start = fd_kinds(proxy.pid)
                    print(_row(s), flush=True)
                    time.sleep(args.interval)
                wrk.wait()
                stack.set_hang(0)
                proxy.settle(60)
                time.sleep(args.interval)
                samples.append(sample(proxy, started, "after"))
                print(_row(samples[-1]))
                print(
                    f"\nfds by kind at t≈20 s: {kinds_at_start}; at the end: {fd_kinds(proxy.pid)}"
                )
                print()
                print(report(args, samples, (tmp / "wrk-soak.log").read_text(), delay_ms))
            finally:
                proxy.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return samples


def _row(s: Sample) -> str:
    return (
        f"| {s.at:5.0f} | {s.phase} | {s.rss_mb:.0f} | {s.fds} | {s.tasks:.0f} | "
        f"{s.forwarded:,.0f} | {s.compared:,.0f} | {s.skipped:,.0f} | {s.queue:.0f} | "
        f"{s.in_flight:.0f} |"
    )


def report(args: argparse.Namespace, samples: list[Sample], wrk_output: str, delay_ms: int) -> str:
    load = parse_wrk(wrk_output)
    # "start" is the first sample under load, once pools and the comparator are warm.
    loaded = [s for s in samples if s.phase != "idle"]
    start = next((s for s in loaded if s.at >= 20), loaded[0])
    end = samples[-1]
    steady = [s for s in loaded if s.phase in {"steady", "recovered"} and s.at >= start.at]
    lines = [
        f"Machine: {machine()}",
        f"Command: `bench/soak.py {' '.join(sys.argv[1:])}`",
        f"Load: wrk, {args.connections} connections, {delay_ms} ms between requests per "
        f"connection (target {args.rate}/s): {load.requests:,} requests, {load.rps:,.0f} req/s, "
        f"p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms, {load.errors} errors.",
        "",
        "| measure | idle | start (t≈20 s) | peak | end (load over, queue drained) |",
        "|---|---:|---:|---:|---:|",
        f"| RSS, process tree (MB) | {samples[0].rss_mb:.0f} | {start.rss_mb:.0f} | "
        f"{max(s.rss_mb for s in samples):.0f} | {end.rss_mb:.0f} |",
        f"| open fds, process tree | {samples[0].fds} | {start.fds} | "
        f"{max(s.fds for s in samples)} | {end.fds} |",
        f"| asyncio tasks (serving loop) | {samples[0].tasks:.0f} | {start.tasks:.0f} | "
        f"{max(s.tasks for s in samples):.0f} | {end.tasks:.0f} |",
        "",
    ]
    # RSS follows what the comparator queue holds (up to its byte budget), so growth is judged
    # between samples in the same state: the queue full, early in the run and late in it.
    deepest = max(s.queue for s in steady) if steady else 0
    full = [s for s in steady if deepest and s.queue >= 0.95 * deepest]
    if len(full) >= 6:
        tenth = max(3, len(full) // 5)
        early = statistics.median(s.rss_mb for s in full[:tenth])
        late = statistics.median(s.rss_mb for s in full[-tenth:])
        lines.append(
            f"RSS with the comparator queue full (≥ 95 % of its deepest, {len(full)} samples): "
            f"median {early:.0f} MB over the first {tenth} (≤ {full[tenth - 1].forwarded:,.0f} "
            f"requests), {late:.0f} MB over the last {tenth} "
            f"(≥ {full[-tenth].forwarded:,.0f} requests)."
        )
    hang = [s for s in samples if s.phase == "hang"]
    if hang:
        lines.append(
            f"During the {args.hang_seconds:g} s hang: RSS peak {max(s.rss_mb for s in hang):.0f}"
            f" MB, fds peak {max(s.fds for s in hang)}, tasks peak "
            f"{max(s.tasks for s in hang):.0f}, shadow calls in flight peak "
            f"{max(s.in_flight for s in hang):.0f}."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=200.0, help="target requests per second")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--hang-seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    args = parser.parse_args()
    try:
        soak(args)
    except subprocess.CalledProcessError as exc:
        sys.exit(f"soak: {exc}")


if __name__ == "__main__":
    main()
