"""``shadowproxy diff A B``: the proxy's comparison engine on two JSON files.

Exit status as diff(1): 0 when the documents are equal under the rules, 1 when they differ,
2 on an error (unreadable file, invalid JSON, invalid rules, unknown endpoint).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlsplit

import orjson

from shadowproxy.compare.body import parse_json
from shadowproxy.compare.differ import diff_documents
from shadowproxy.compare.patch import to_json_patch
from shadowproxy.model import Difference, DiffKind, Severity
from shadowproxy.rules import EndpointRules, RulesError, Ruleset, load_ruleset

EXIT_EQUAL, EXIT_DIFFERENT, EXIT_ERROR = 0, 1, 2
VALUE_WIDTH = 120
"""Longest rendering of one value in text output; longer ones are cut with an ellipsis."""

_RED, _GREEN, _BOLD, _DIM, _RESET = "\x1b[31m", "\x1b[32m", "\x1b[1m", "\x1b[2m", "\x1b[0m"


class DiffUsageError(Exception):
    """A problem with the command's input: reported on stderr, exit status 2."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``diff`` sub-command."""
    parser = subparsers.add_parser(
        "diff",
        help="compare two JSON files with the proxy's engine and rules",
        description="Compare two JSON documents (A = primary, B = shadow) under a rule file. "
        "Exit status: 0 equal, 1 different, 2 error.",
    )
    parser.add_argument(
        "a", type=Path, metavar="A", help="the primary's JSON document ('-' = stdin)"
    )
    parser.add_argument("b", type=Path, metavar="B", help="the shadow's JSON document")
    parser.add_argument("--rules", type=Path, default=None, help="rule file (YAML); default: exact")
    parser.add_argument(
        "--endpoint",
        default=None,
        help='whose rules apply: an endpoint name or a request such as "GET /v3/title?id=9000" '
        "(default: the rule file's defaults)",
    )
    parser.add_argument(
        "--format",
        choices=("text", "json", "jsonpatch"),
        default="text",
        help="text: a line per difference; json: the differences; jsonpatch: RFC 6902, A to B",
    )
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the text output (auto: when writing to a terminal)",
    )
    parser.set_defaults(func=run)


def _read(path: Path) -> Any:
    try:
        data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        raise DiffUsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    parsed = parse_json(data)
    if not parsed.ok:
        raise DiffUsageError(f"{path}: {parsed.problem}")
    return parsed.value


def endpoint_rules(ruleset: Ruleset, endpoint: str | None) -> EndpointRules:
    """The rules for ``--endpoint``: a name, a ``METHOD /path?query`` request, or the defaults."""
    if endpoint is None:
        return ruleset.defaults
    named = ruleset.by_name(endpoint)
    if named is not None:
        return named
    method, _, target = endpoint.strip().partition(" ")
    target = target.strip()
    if not target.startswith("/"):
        names = ", ".join(ruleset.endpoint_names()) or "none"
        raise DiffUsageError(
            f"--endpoint {endpoint!r}: not an endpoint name (names: {names}) nor a request "
            'such as "GET /v3/title?id=9000"'
        )
    parts = urlsplit(target)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return ruleset.resolve(method.upper(), parts.path, query, {})


def _show(value: Any) -> str:
    text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


def format_text(differences: list[Difference], color: bool) -> str:
    """One line per difference: location, kind, then the values (primary → shadow)."""
    red, green, bold, dim, reset = (_RED, _GREEN, _BOLD, _DIM, _RESET) if color else ("",) * 5
    lines = []
    for diff in differences:
        where = diff.where or "(root)"
        flag = f" {bold}[critical]{reset}" if diff.severity is Severity.CRITICAL else ""
        if diff.kind is DiffKind.MISSING:
            values = f"{red}{_show(diff.primary)}{reset} {dim}(absent in B){reset}"
        elif diff.kind is DiffKind.EXTRA:
            values = f"{dim}(absent in A){reset} {green}{_show(diff.shadow)}{reset}"
        else:
            values = f"{red}{_show(diff.primary)}{reset} → {green}{_show(diff.shadow)}{reset}"
        lines.append(f"{bold}{where}{reset}  {diff.kind}  {values}{flag}")
    return "\n".join(lines) + ("\n" if lines else "")


def format_json(differences: list[Difference]) -> bytes:
    """The differences as a JSON document (``equal`` plus one object per difference)."""
    return orjson.dumps(
        {
            "equal": not differences,
            "differences": [
                {
                    "pointer": d.pointer,
                    "template": d.template,
                    "label": d.label,
                    "kind": str(d.kind),
                    "primary": d.primary,
                    "shadow": d.shadow,
                    "severity": str(d.severity),
                }
                for d in differences
            ],
        },
        option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
    )


def _wants_color(choice: str, stream: TextIO) -> bool:
    if choice == "auto":
        return stream.isatty()
    return choice == "always"


def run(args: argparse.Namespace) -> int:
    """The command: compare, print, return the exit status."""
    try:
        ruleset = load_ruleset(args.rules)
        rules = endpoint_rules(ruleset, args.endpoint)
        primary = _read(args.a)
        shadow = _read(args.b)
    except (RulesError, DiffUsageError) as exc:
        print(f"shadowproxy diff: {exc}", file=sys.stderr)
        return EXIT_ERROR
    differences = diff_documents(primary, shadow, rules)
    if args.format == "json":
        sys.stdout.buffer.write(format_json(differences) + b"\n")
    elif args.format == "jsonpatch":
        patch = to_json_patch(differences)
        sys.stdout.buffer.write(orjson.dumps(patch, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        sys.stdout.write(format_text(differences, _wants_color(args.color, sys.stdout)))
    sys.stdout.flush()
    return EXIT_DIFFERENT if differences else EXIT_EQUAL
