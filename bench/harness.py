"""What the proxy and soak benchmarks share: owned processes, wrk, /proc sampling, /metrics.

Every process a benchmark starts is registered with a :class:`Processes` and stopped by its pid
when the benchmark ends (SIGTERM, then SIGKILL after a grace period); nothing is stopped by name.
"""

from __future__ import annotations

import os
import platform
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
SHADOWPROXY = str(ROOT / ".venv" / "bin" / "shadowproxy")
WRK = "/usr/bin/wrk"


# --- owned processes ------------------------------------------------------------------------------


class Processes:
    """The processes one benchmark started; :meth:`stop_all` ends them, newest first."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self._running: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` with stdout and stderr in ``<logs>/<name>.log``."""
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )
        log.close()
        self._running.append((name, process))
        return process

    @property
    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self._running}

    def stop(self, process: subprocess.Popen[bytes], grace: float = 30.0) -> None:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; by pid only."""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self._running = [(n, p) for n, p in self._running if p is not process]

    def stop_all(self) -> None:
        for _, process in reversed(list(self._running)):
            self.stop(process, grace=15.0)


@contextmanager
def owned_processes(logs: Path) -> Iterator[Processes]:
    """A :class:`Processes` whose members are all stopped on exit, whatever happened."""
    processes = Processes(logs)
    try:
        yield processes
    finally:
        processes.stop_all()


def wait_http(
    url: str, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll ``url`` until it answers (any status); raise if ``process`` died or time ran out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.1)


def http_get(url: str, timeout: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body


# --- wrk ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Load:
    """One wrk run's outcome."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    """Socket errors (connect, read, write, timeout) plus non-2xx/3xx responses."""


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def parse_wrk(output: str) -> Load:
    """Requests/sec, the 50 % and 99 % latencies (``--latency``), requests and errors."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])  # type: ignore[index]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M)[1])  # type: ignore[index]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M)[1])  # type: ignore[index]
    requests = int(re.search(r"(\d+) requests in", output)[1])  # type: ignore[index]
    errors = 0
    if m := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors += sum(int(g) for g in m.groups())
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(m[1])
    return Load(rps, p50, p99, requests, errors)


def wrk_argv(
    url: str, connections: int, seconds: float, *, script: Path | None = None
) -> list[str]:
    threads = 1 if connections < 4 else 2
    argv = [WRK, "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s", "--latency"]
    argv += ["--timeout", "10s"]
    if script is not None:
        argv += ["-s", str(script)]
    return [*argv, url]


def run_wrk(url: str, connections: int, seconds: float, *, script: Path | None = None) -> Load:
    """Drive ``url`` with ``connections`` keep-alive connections for ``seconds``."""
    done = subprocess.run(
        wrk_argv(url, connections, seconds, script=script),
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    return parse_wrk(done.stdout)


# --- /proc ----------------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (serving processes, comparators, trackers)."""
    tree = _children()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(tree.get(pid, ()))
    return out


@dataclass(frozen=True, slots=True)
class Footprint:
    """A process tree's resident memory and open descriptors at one moment."""

    rss_mb: float
    fds: int
    processes: int
    root_rss_mb: float = 0.0
    """The root process alone (with ``--workers 1``, the serving process)."""


def footprint(root: int) -> Footprint:
    """Sum RSS (VmRSS) and open fds over ``root``'s process tree."""
    rss_kb = root_kb = 0
    fds = 0
    pids = process_tree(root)
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss_kb += int(line.split()[1])
                    root_kb += int(line.split()[1]) if pid == root else 0
            fds += sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue  # exited between the listing and the read
    return Footprint(rss_kb / 1024, fds, len(pids), root_kb / 1024)


def fd_kinds(root: int) -> dict[str, int]:
    """Open descriptors of ``root``'s tree by kind: socket, pipe, anon_inode, or the file's
    suffix (``.db``, ``-wal``, ...), to tell pooled connections from files."""
    kinds: dict[str, int] = {}
    for pid in process_tree(root):
        try:
            entries = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for entry in entries:
            try:
                target = str(entry.readlink())
            except OSError:
                continue
            kind = target.split(":", 1)[0] if ":" in target else Path(target).suffix or target
            kinds[kind] = kinds.get(kind, 0) + 1
    return dict(sorted(kinds.items(), key=lambda kv: -kv[1]))


def cpu_seconds(root: int) -> float:
    """User plus system CPU seconds used so far by ``root``'s process tree (live members)."""
    ticks = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


# --- /metrics -------------------------------------------------------------------------------------

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(admin_url: str) -> Samples:
    """The admin listener's /metrics as ``{(name, labels): value}``."""
    text = http_get(admin_url + "/metrics").decode()
    samples: Samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = frozenset(_LABEL.findall(match[2] or ""))
        samples[(match[1], labels)] = float(match[3])
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of ``name`` over every label set containing ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


# --- the machine ----------------------------------------------------------------------------------


def machine() -> str:
    """One line: cores, CPU model, load, Python."""
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} cores ({model}), shared with other engineers' test runs, noisy; "
        f"load average {load[0]:.1f}/{load[1]:.1f} at start; Python {platform.python_version()} "
        f"on {sys.platform}"
    )
