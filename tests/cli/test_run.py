"""``shadowproxy run``: start-up failures are one clear line and exit code 2."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shadowproxy", "run", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin"},
    )


BACKENDS = ("--primary", "http://127.0.0.1:9", "--shadow", "http://127.0.0.1:9")


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(
            *BACKENDS,
            "--listen",
            f"127.0.0.1:{port}",
            "--admin-listen",
            "127.0.0.1:0",
            cwd=tmp_path,
        )
    assert 2 == result.returncode
    assert (
        f"shadowproxy: --listen 127.0.0.1:{port}: address already in use"
        == result.stderr.splitlines()[-1]
    )


def test_malformed_url_is_one_line(tmp_path: Path) -> None:
    result = run("--primary", "ftp://x", "--shadow", "http://127.0.0.1:9", cwd=tmp_path)
    assert 2 == result.returncode
    assert result.stderr.startswith("shadowproxy: --primary: expected an http:// or https:// URL")
    assert 1 == len(result.stderr.splitlines())


def test_unreadable_rules_is_one_line(tmp_path: Path) -> None:
    result = run(*BACKENDS, "--rules", str(tmp_path / "missing.yaml"), cwd=tmp_path)
    assert 2 == result.returncode
    assert "missing.yaml" in result.stderr
    assert 1 == len(result.stderr.splitlines())


def test_bad_store_url_is_one_line(tmp_path: Path) -> None:
    result = run(*BACKENDS, "--store", "postgres://db/x", cwd=tmp_path)
    assert 2 == result.returncode
    assert result.stderr.startswith("shadowproxy: --store 'postgres://db/x': unknown store")
    assert 1 == len(result.stderr.splitlines())


def test_unknown_option_is_rejected(tmp_path: Path) -> None:
    result = run(*BACKENDS, "--sampel", "5", cwd=tmp_path)
    assert 2 == result.returncode
    assert "unrecognized arguments: --sampel 5" in result.stderr


def test_help_documents_every_option(tmp_path: Path) -> None:
    result = run("--help", cwd=tmp_path)
    assert 0 == result.returncode
    for flag in (
        "--primary",
        "--shadow",
        "--listen",
        "--admin-listen",
        "--rules",
        "--store",
        "--sample",
        "--shadow-timeout",
        "--queue-size",
        "SHADOWPROXY_SAMPLE",
    ):
        assert flag in result.stdout


def test_unwritable_store_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    result = run(*BACKENDS, "--store", f"sqlite:///{tmp_path}/a-file/s.db", cwd=tmp_path)
    assert 2 == result.returncode
    assert result.stderr.splitlines()[-1].startswith(
        f"shadowproxy: --store sqlite:///{tmp_path}/a-file/"
    )
    assert "Traceback" not in result.stderr
