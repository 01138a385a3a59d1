"""``shadowproxy demo``: see the proxy at work on an AniLibria-like API and its rewrite."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from shadowproxy.settings import HostPort, argument_type, parse_host_port, positive


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``demo`` sub-command."""
    parser = subparsers.add_parser(
        "demo",
        help="run a demo: an AniLibria-like API, its rewrite, the proxy and traffic",
        description="Start an AniLibria-like catalogue API (the legacy primary) and a rewrite of "
        "it with planted differences (the shadow) on free ports, put the proxy in front, send "
        "realistic traffic through it and print what differs per endpoint. Keeps running with "
        "the dashboard up until Ctrl-C, or for --duration seconds.",
    )
    parser.add_argument(
        "--duration",
        type=_positive_float,
        metavar="S",
        help="stop after S seconds (default: run until Ctrl-C)",
    )
    parser.add_argument(
        "--listen",
        type=_host_port,
        metavar="HOST:PORT",
        help="traffic listener (default 127.0.0.1:8080, or a free port if taken)",
    )
    parser.add_argument(
        "--admin-listen",
        type=_host_port,
        metavar="HOST:PORT",
        help="dashboard, API and metrics (default 127.0.0.1:9090, or a free port)",
    )
    parser.add_argument(
        "--store",
        metavar="URL",
        default=None,
        help="where mismatches go (default sqlite:///shadowproxy-demo.db, "
        "a file in the working directory)",
    )
    rules = parser.add_mutually_exclusive_group()
    rules.add_argument(
        "--rules",
        type=Path,
        metavar="FILE",
        help="rule file (default: the packaged AniLibria rules, when present)",
    )
    rules.add_argument(
        "--no-rules", action="store_true", help="compare bodies exactly, without any rule file"
    )
    parser.add_argument(
        "--rate",
        type=_positive_float,
        default=5.0,
        metavar="N",
        help="requests per second after the opening burst (default 5)",
    )
    parser.add_argument(
        "--requests",
        type=_positive_int,
        default=400,
        metavar="N",
        help="requests in the opening burst (default 400)",
    )
    parser.add_argument(
        "--backend",
        choices=("legacy", "rewrite"),
        help="serve only this demo backend on --listen (no proxy, no traffic): "
        "for trying the proxy or the deploy/ compose file against it",
    )
    parser.set_defaults(func=run)


_host_port = argument_type(parse_host_port)
_positive_float = argument_type(positive(float))
_positive_int = argument_type(positive(int))


def run(args: argparse.Namespace) -> int:
    """Run the demo; 0 when it ends by Ctrl-C, SIGTERM or --duration, 2 when it cannot start."""
    # Imported here: --help and the other sub-commands need none of the proxy's stack.
    from shadowproxy.demo.runner import DEFAULT_STORE, DemoOptions, packaged_rules, run_demo
    from shadowproxy.server import StartupError

    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.backend:
        from shadowproxy.demo.runner import serve_backend

        return asyncio.run(serve_backend(args.backend, args.listen or HostPort("127.0.0.1", 3000)))
    options = DemoOptions(
        duration=args.duration,
        listen=args.listen,
        admin_listen=args.admin_listen,
        store=args.store or DEFAULT_STORE,
        rules=None if args.no_rules else (args.rules or packaged_rules()),
        rate=args.rate,
        burst=args.requests,
    )
    if options.rules is not None and not options.rules.is_file():
        print(f"shadowproxy demo: --rules {options.rules}: no such file", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run_demo(options))
    except StartupError as exc:
        print(f"shadowproxy demo: {exc}", file=sys.stderr)
        return 2
