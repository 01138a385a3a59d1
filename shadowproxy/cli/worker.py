"""``shadowproxy worker``: compare and store exchanges that proxies publish to a Redis stream."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shadowproxy import settings as settings_module
from shadowproxy.cli.run import configure_logging
from shadowproxy.queue import DEFAULT_STREAM
from shadowproxy.settings import argument_type, parse_host_port, positive
from shadowproxy.worker import (
    DEFAULT_GROUP,
    WorkerSettings,
    WorkerStartupError,
    default_consumer,
    serve_worker,
)

SHARED_OPTIONS = (
    "queue",
    "store",
    "rules",
    "store_body_max",
    "group_store_per_hour",
    "retention_days",
    "store_max_bytes",
    "redact_headers",
    "redact_query",
    "redact_hmac_key",
    "log_level",
)
"""Options the worker shares with ``shadowproxy run`` (same flags, environment and config keys)."""

WORKER_HELP = {
    "queue": "Redis holding the stream the proxies publish to (their --queue). Required.",
    "rules": "Rule file (YAML) the exchanges are compared under; deploy the proxies' file. "
    "Without one, bodies are compared exactly.",
}
"""Help texts that read differently from the worker's side."""


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    return argument_type(positive(kind))


def _name(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text.strip()


_host_port = argument_type(parse_host_port)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="compare and store exchanges published to a Redis stream by proxies run with --queue",
        description="Read exchanges from the Redis stream in a consumer group, compare them under "
        "the rule file, write the results to the store, and acknowledge each entry only once it "
        "is stored. Entries left pending by a dead worker are claimed after --claim-idle. "
        "SIGTERM finishes the batch in hand; SIGHUP reloads the rules.",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help=f"YAML file of option names to values (also {settings_module.ENV_PREFIX}CONFIG).",
    )
    for option in settings_module.OPTIONS:
        if option.name in SHARED_OPTIONS:
            parser.add_argument(
                option.flag,
                dest=option.name,
                metavar=option.metavar or None,
                default=None,
                help=f"{WORKER_HELP.get(option.name, option.help)} [env {option.env}]",
            )
    parser.add_argument(
        "--stream",
        type=_name,
        default=DEFAULT_STREAM,
        metavar="KEY",
        help=f"Stream key the proxies publish to (default {DEFAULT_STREAM}).",
    )
    parser.add_argument(
        "--group",
        type=_name,
        default=DEFAULT_GROUP,
        metavar="NAME",
        help=f"Consumer group; workers in one group share the work (default {DEFAULT_GROUP}).",
    )
    parser.add_argument(
        "--consumer",
        type=_name,
        default=None,
        metavar="NAME",
        help="This worker's name in the group (default HOST-PID). A stable name resumes its own "
        "unacknowledged entries at once after a restart.",
    )
    parser.add_argument(
        "--batch",
        type=_positive(int),
        default=100,
        metavar="N",
        help="Entries read, compared and written per batch (default 100).",
    )
    parser.add_argument(
        "--claim-idle",
        type=_positive(float),
        default=60.0,
        metavar="SECONDS",
        help="Take over entries pending this long on another consumer (default 60). Keep it "
        "longer than a batch can take, store outages included.",
    )
    parser.add_argument(
        "--stop-grace",
        type=_positive(float),
        default=10.0,
        metavar="SECONDS",
        help="On SIGTERM, how long to keep retrying the store write of the batch in hand "
        "(default 10).",
    )
    parser.add_argument(
        "--forget-idle",
        type=_positive(float),
        default=3600.0,
        metavar="SECONDS",
        help="Remove consumers that have nothing pending and were silent this long from the "
        "group (default 3600): dead workers' names do not pile up.",
    )
    parser.add_argument(
        "--max-deliveries",
        type=_positive(int),
        default=5,
        metavar="N",
        help="An entry taken over more often than this (it keeps killing workers) is stored as "
        "skipped with reason 'poison' instead of compared again (default 5).",
    )
    parser.add_argument(
        "--metrics-listen",
        type=_host_port,
        default=None,
        metavar="HOST:PORT",
        help="Serve /metrics and /healthz here (default: not served).",
    )
    parser.set_defaults(func=run)


def worker_settings(args: argparse.Namespace) -> WorkerSettings:
    """The settings the parsed arguments describe; raises ``SettingsError``."""
    base = settings_module.resolve(
        {name: getattr(args, name, None) for name in (*SHARED_OPTIONS, "config")},
        required=("queue",),
    )
    return WorkerSettings(
        base=base,
        stream=args.stream,
        group=args.group,
        consumer=args.consumer or default_consumer(),
        batch=args.batch,
        claim_idle=args.claim_idle,
        stop_grace=args.stop_grace,
        max_deliveries=args.max_deliveries,
        forget_idle=args.forget_idle,
        metrics_listen=args.metrics_listen,
    )


def run(args: argparse.Namespace) -> int:
    try:
        settings = worker_settings(args)
    except settings_module.SettingsError as exc:
        print(f"shadowproxy worker: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.base.log_level)
    try:
        asyncio.run(serve_worker(settings))
    except WorkerStartupError as exc:
        print(f"shadowproxy worker: {exc}", file=sys.stderr)
        return 2
    return 0
