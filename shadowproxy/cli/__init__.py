"""The ``shadowproxy`` command: one sub-command per module in this package.

Each module exposes ``register(subparsers)``, which adds its sub-command and sets ``func`` to a
function taking the parsed arguments and returning the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from shadowproxy import __version__

# Sub-command modules, in the order --help lists them. Imported lazily so that a missing optional
# piece never breaks the others, and so `shadowproxy diff` does not pay for aiohttp's import.
COMMANDS = ("run", "demo", "diff", "rules", "report", "worker", "control")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shadowproxy",
        description="Serve from the primary, mirror to the shadow, compare the JSON, "
        "show where they differ.",
    )
    parser.add_argument("--version", action="version", version=f"shadowproxy {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"shadowproxy.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"shadowproxy.cli.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
