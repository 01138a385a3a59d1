"""``shadowproxy demo``, run as a user runs it: a subprocess in a fresh working directory."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

import shadowproxy

REPO = Path(shadowproxy.__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the printed summary table."""

    compared: int
    mismatches: int
    shadow_errors: int
    primary_p50_ms: int
    shadow_p50_ms: int
    fields: str


def demo_command(*extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "shadowproxy",
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        *extra,
    ]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def run_demo(tmp_path: Path, *flags: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``shadowproxy demo`` in ``tmp_path``, run to its end."""
    return subprocess.run(
        demo_command(*flags),
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def summary_rows(output: str) -> dict[str, Row]:
    """The last summary table printed, by endpoint."""
    rows: dict[str, Row] = {}
    pattern = re.compile(
        r"^(\S+(?: /\S+)?)\s+(\d+)\s+(\d+) \(\d+%\)\s+(\d+)\s+(\d+) / (\d+)\s+(.*)$"
    )
    for line in output.splitlines():
        if match := pattern.match(line):
            endpoint, compared, mismatches, errors, primary_ms, shadow_ms, fields = match.groups()
            rows[endpoint] = Row(
                int(compared), int(mismatches), int(errors), int(primary_ms), int(shadow_ms), fields
            )
    return rows


def test_demo_runs_for_its_duration_and_prints_the_planted_differences(tmp_path: Path) -> None:
    """`demo --duration 5` (packaged AniLibria rules) exits 0 on its own and prints a summary
    row per endpoint in which the planted differences the rules do not excuse show: the extra
    names.jp, ids as strings in search, late update pages failing, the slow schedule; the
    SQLite file lands in the working directory."""
    started = time.monotonic()
    result = run_demo(tmp_path, "--duration", "5", timeout=90)
    elapsed = time.monotonic() - started
    assert 0 == result.returncode, result.stderr
    assert elapsed < 60
    rows = summary_rows(result.stdout)
    assert {
        "title.by_id",
        "titles.list",
        "titles.search",
        "titles.schedule",
        "titles.updates",
        "genres",
        "years",
    } <= set(rows)
    for planted in (
        "extra names.jp",
        "id sent as a string",
        "/v3/title/updates answers 500",
        "/v3/title/schedule answers about 300 ms late",
    ):
        assert re.search(rf"^  seen +{re.escape(planted)}", result.stdout, re.MULTILINE), planted
    assert "/list/*/id (type)" in rows["titles.search"].fields
    assert rows["titles.updates"].shadow_errors >= 1
    assert rows["titles.schedule"].shadow_p50_ms >= 200  # the planted 300 ms
    assert 0 == rows["genres"].mismatches
    assert "in_favorites" not in result.stdout
    assert (tmp_path / "shadowproxy-demo.db").is_file()
    assert result.stdout.rstrip().endswith("demo stopped")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_demo_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    """Without --duration the demo keeps running with the URLs printed; SIGINT ends it with
    exit status 0 and its goodbye line."""
    process = subprocess.Popen(
        demo_command("--no-rules", "--requests", "40", "--rate", "20"),
        cwd=tmp_path,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith("still sending"):
                break
        assert any(line.startswith("dashboard  http://127.0.0.1:") for line in seen), seen
        assert any("Ctrl-C to stop" in line for line in seen), seen
        process.send_signal(signal.SIGINT)
        rest, errors = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert 0 == process.returncode, errors
    assert "final summary:" in rest
    assert rest.rstrip().endswith("demo stopped")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--rules", "missing.yaml"), "shadowproxy demo: --rules missing.yaml: no such file"),
        (("--store", "foo://x"), "shadowproxy demo: --store 'foo://x': unknown store"),
        (("--duration", "0"), "argument --duration: must be greater than 0, got 0"),
        (("--listen", "nope"), "argument --listen: expected HOST:PORT, got 'nope'"),
    ],
)
def test_bad_options_stop_the_demo_with_one_clear_line(
    flags: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    """A missing rule file, an unknown store, a bad duration or address: exit 2, nothing started,
    and the last line of stderr says what and where."""
    result = run_demo(tmp_path, *flags, timeout=60)
    assert 2 == result.returncode
    assert message in result.stderr.strip().splitlines()[-1]
    assert "" == result.stdout


def test_backend_mode_serves_one_backend(tmp_path: Path) -> None:
    """`demo --backend legacy` serves the legacy catalogue alone, for compose or manual tries."""

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shadowproxy",
            "demo",
            "--backend",
            "legacy",
            "--listen",
            f"127.0.0.1:{port}",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert (
            f"demo legacy backend on http://127.0.0.1:{port}" == process.stdout.readline().strip()
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v3/genres", timeout=5) as answer:
            assert answer.headers["X-Powered-By"] == "Express"
    finally:
        process.send_signal(signal.SIGTERM)
        assert 0 == process.wait(timeout=20)
        if process.stdout is not None:
            process.stdout.close()
