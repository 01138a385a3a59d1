"""``shadowproxy run``: the proxy in front of a primary and a shadow."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from shadowproxy import settings as settings_module
from shadowproxy.proxy.governor import serving_loop
from shadowproxy.server import StartupError, serve


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the proxy in front of a primary and a shadow backend",
        description="Forward every request to the primary and answer the client with its "
        "response; mirror safe requests to the shadow, compare the two, record mismatches. "
        "Every option can also be set as SHADOWPROXY_<OPTION> in the environment or in a "
        "YAML --config file; flags win over the environment, which wins over the file.",
    )
    settings_module.add_arguments(parser)
    parser.set_defaults(func=run)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_module.resolve(args)
    except settings_module.SettingsError as exc:
        print(f"shadowproxy: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        with asyncio.Runner(loop_factory=serving_loop) as runner:
            runner.run(serve(settings))
    except StartupError as exc:
        print(f"shadowproxy: {exc}", file=sys.stderr)
        return 2
    return 0
