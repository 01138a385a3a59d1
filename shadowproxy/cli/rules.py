"""``shadowproxy rules check FILE``: validate a rule file and say what each endpoint will do.

Exit status: 0 when the file is valid, 2 when it is not (the error names file, line, column and
rule) or cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shadowproxy.rules import RulesError, load_ruleset
from shadowproxy.rules.explanation import explain

EXIT_VALID, EXIT_INVALID = 0, 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``rules`` sub-command (``rules check FILE``)."""
    parser = subparsers.add_parser(
        "rules", help="work with rule files", description="Work with rule files."
    )
    actions = parser.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="validate a rule file and explain what each endpoint will do",
        description="Validate a rule file; print, endpoint by endpoint, what will be compared "
        "and how. Exit status: 0 valid, 2 invalid.",
    )
    check.add_argument("file", type=Path, metavar="FILE", help="the rule file (YAML)")
    check.add_argument(
        "--quiet", "-q", action="store_true", help="print nothing when the file is valid"
    )
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    """Validate ``args.file``; print the explanation (or the error); return the exit status."""
    try:
        ruleset = load_ruleset(args.file)
    except RulesError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if not args.quiet:
        print("\n".join(explain(ruleset)))
    return EXIT_VALID
