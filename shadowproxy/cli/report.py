"""``shadowproxy report``: the readiness report from a store, as HTML, JSON, CSV, Markdown or JUnit.

Exit status: 0 when the report was written (and, with ``--fail-over``, the gate passes); 1 when
``--fail-over`` is given and the gate fails; 2 on an error (bad store URL, unreadable store,
unwritable output, bad option). The report is written even when the gate fails: CI keeps it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import BinaryIO, TextIO

from shadowproxy.admin.openapi import report_schema
from shadowproxy.report.formats import FORMATS
from shadowproxy.report.model import Report, collect_report
from shadowproxy.report.readiness import Criteria
from shadowproxy.report.window import WindowError, parse_window
from shadowproxy.settings import Settings, SettingsError, resolve
from shadowproxy.store import open_store
from shadowproxy.store.contract import StoreError

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
PROGRESS_DELAY = 0.5
"""Seconds an export runs before a progress bar appears (on a terminal only)."""


class ReportUsageError(Exception):
    """A problem with the command's input or output: reported on stderr, exit status 2."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``report`` sub-command."""
    defaults = Criteria()
    parser = subparsers.add_parser(
        "report",
        help="export the readiness report (html, json, csv, md, junit) with a pass/fail gate",
        description="Read a store and write the readiness report: per endpoint the counts, "
        "rates, latency, differing fields, examples and a pass/fail verdict against the "
        "readiness criteria. Exit status: 0 written (gate passed, with --fail-over), 1 gate "
        "failed (with --fail-over), 2 error.",
    )
    parser.add_argument(
        "--store",
        default=None,
        metavar="URL",
        help="the store to read (sqlite:///file.db, sqlite:////abs/path.db, mongodb://host/db); "
        f"default: SHADOWPROXY_STORE, the config file's store, else {Settings().store}",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="the config file (YAML) of `shadowproxy run`, for its store setting",
    )
    parser.add_argument(
        "--since",
        default="24h",
        help="start of the window: a duration back from now (30m, 24h, 7d), a Unix "
        "timestamp or an ISO 8601 date (default: %(default)s)",
    )
    parser.add_argument("--until", default="", help="end of the window (default: now)")
    parser.add_argument("--endpoint", default=None, help="only this endpoint")
    parser.add_argument(
        "--format",
        choices=tuple(FORMATS),
        default="html",
        help="output format (default: %(default)s)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="write here (default: standard output)",
    )
    parser.add_argument(
        "--fail-over",
        type=parse_rate,
        default=None,
        metavar="RATE",
        help="gate: exit 1 unless every endpoint is ready with a mismatch rate below RATE "
        "(0.001 or 0.1%%); without it the exit status ignores readiness",
    )
    parser.add_argument(
        "--min-samples",
        type=_count,
        default=defaults.min_samples,
        metavar="N",
        help="comparisons an endpoint needs to pass (default: %(default)s)",
    )
    parser.add_argument(
        "--max-shadow-error-rate",
        type=parse_rate,
        default=defaults.max_shadow_error_rate,
        metavar="RATE",
        help="shadow error rate must be below this (default: %(default)s)",
    )
    parser.add_argument(
        "--max-critical",
        type=_count,
        default=defaults.max_critical,
        metavar="N",
        help="comparisons with critical differences tolerated (default: %(default)s)",
    )
    parser.add_argument(
        "--max-latency-ratio",
        type=_positive,
        default=defaults.max_latency_ratio,
        metavar="X",
        help="shadow p95 must be below primary p95 times X (default: %(default)s)",
    )
    parser.add_argument(
        "--max-shadow-p95-ms",
        type=_positive,
        default=defaults.max_shadow_p95_ms,
        metavar="MS",
        help="shadow p95 must be below this (default: %(default)s)",
    )
    parser.add_argument(
        "--examples",
        type=_count,
        default=3,
        metavar="N",
        help="example mismatches per endpoint (default: %(default)s)",
    )
    parser.add_argument(
        "--json-schema",
        action="store_true",
        help="write the JSON Schema of --format json (to -o or standard output) and exit",
    )
    parser.set_defaults(func=run)


def parse_rate(text: str) -> float:
    """``0.001`` or ``0.1%`` → 0.001; a fraction between 0 and 1."""
    raw = text.strip()
    try:
        value = float(raw.removesuffix("%")) / (100.0 if raw.endswith("%") else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate (0.001 or 0.1%)") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 1 (0 % and 100 %)")
    return value


def _count(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ≥ 0")
    return int(text)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def run(args: argparse.Namespace) -> int:
    """Collect, render and write the report; the exit status as the module docstring says."""
    if args.json_schema:
        try:
            _write(json.dumps(report_schema(), indent=2).encode() + b"\n", args.output)
        except ReportUsageError as exc:
            print(f"shadowproxy report: {exc}", file=sys.stderr)
            return EXIT_ERROR
        return EXIT_PASS
    try:
        report = asyncio.run(_collect(args, Progress(sys.stderr)))
        document = FORMATS[args.format].render(report)
        _write(document, args.output)
    except (ReportUsageError, StoreError) as exc:
        print(f"shadowproxy report: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.output is not None:
        print(f"shadowproxy report: {report.verdict} → {args.output}", file=sys.stderr)
    if args.fail_over is None:
        return EXIT_PASS
    return EXIT_PASS if report.passed else EXIT_FAIL


def _criteria(args: argparse.Namespace) -> Criteria:
    defaults = Criteria()
    return Criteria(
        max_mismatch_rate=defaults.max_mismatch_rate if args.fail_over is None else args.fail_over,
        max_shadow_error_rate=args.max_shadow_error_rate,
        max_critical=args.max_critical,
        max_latency_ratio=args.max_latency_ratio,
        max_shadow_p95_ms=args.max_shadow_p95_ms,
        min_samples=args.min_samples,
    )


async def _collect(args: argparse.Namespace, progress: Progress) -> Report:
    try:
        window = parse_window(args.since, args.until, now=time.time())
    except WindowError as exc:
        raise ReportUsageError(f"--since/--until: {exc}") from None
    url = store_url(args)
    _refuse_missing_sqlite_file(url)
    store = open_store(url)
    try:
        await store.aopen()
        async with asyncio.TaskGroup() as tasks:
            ticker = tasks.create_task(progress.tick())
            try:
                return await collect_report(
                    store,
                    window=window,
                    criteria=_criteria(args),
                    endpoint=args.endpoint,
                    examples=args.examples,
                    progress=progress.update,
                )
            finally:
                ticker.cancel()
                progress.clear()
    finally:
        # The report (or the error that stopped it) matters more than a failed close.
        with contextlib.suppress(StoreError):
            await store.aclose()


def store_url(args: argparse.Namespace) -> str:
    """The store to read, found as ``shadowproxy run`` finds it: flag, environment, config file."""
    try:
        settings = resolve({"store": args.store, "config": args.config}, required=())
    except SettingsError as exc:
        raise ReportUsageError(str(exc)) from None
    return settings.store


def _refuse_missing_sqlite_file(url: str) -> None:
    """A mistyped SQLite path would otherwise open a new, empty store and report nothing."""
    if not url.lower().startswith("sqlite:"):
        return
    from shadowproxy.store.sqlite import sqlite_path

    path = sqlite_path(url)
    if path and path != ":memory:" and not Path(path).exists():
        raise ReportUsageError(f"--store {url!r}: no such file {path}")


def _write(document: bytes, output: Path | None) -> None:
    if output is None:
        stream: BinaryIO = sys.stdout.buffer
        stream.write(document)
        stream.flush()
        return
    try:
        output.write_bytes(document)
    except OSError as exc:
        raise ReportUsageError(f"cannot write {output}: {exc.strerror or exc}") from None


class Progress:
    """A progress bar on ``stream`` when it is a terminal and the export is not instant."""

    WIDTH = 24

    def __init__(self, stream: TextIO, *, delay: float = PROGRESS_DELAY) -> None:
        self._stream = stream
        self._enabled = stream.isatty()
        self._delay = delay
        self._started = time.monotonic()
        self._done = 0
        self._total = 0
        self._shown = False

    def update(self, done: int, total: int) -> None:
        """Record progress (called by :func:`collect_report` after each step)."""
        self._done, self._total = done, total
        self._draw()

    async def tick(self) -> None:
        """Redraw a few times a second, so a slow single step still shows life."""
        while True:
            await asyncio.sleep(0.1)
            self._draw()

    def _draw(self) -> None:
        elapsed = time.monotonic() - self._started
        if not self._enabled or elapsed < self._delay:
            return
        if self._total:
            filled = self.WIDTH * self._done // self._total
            bar = "█" * filled + "░" * (self.WIDTH - filled)
            text = f"report [{bar}] {self._done}/{self._total} steps {elapsed:4.1f}s"
        else:
            text = f"report: reading the store… {elapsed:4.1f}s"
        self._stream.write("\r" + text + "\x1b[K")
        self._stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Remove the bar (if one was drawn) before anything else is printed."""
        if self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._shown = False
