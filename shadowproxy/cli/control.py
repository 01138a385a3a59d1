"""``shadowproxy control``: read and change the fleet-wide switches in Redis, no proxy needed.

::

    shadowproxy control --control redis://host:6379/0 status
    shadowproxy control kill | resume
    shadowproxy control sample 25 | sample default
    shadowproxy control endpoint titles.list on | off | clear
    shadowproxy control rate 50 | rate default

``--control`` may also come from ``SHADOWPROXY_CONTROL`` or a ``--config`` file, as for ``run``.
Every change is written to Redis and published to every proxy at once. Exit status: 0 done,
1 Redis unreachable or its state unreadable (nothing changed), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit, urlunsplit

import orjson

from shadowproxy import settings as settings_module
from shadowproxy.control import Change, ControlPlane, ControlUnavailableError, Switches
from shadowproxy.control.switches import SwitchesError

EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE = 0, 1, 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``control`` sub-command and its actions."""
    parser = subparsers.add_parser(
        "control",
        help="read or change the fleet-wide switches (kill switch, sampling, rate cap) in Redis",
        description="Read or change the runtime switches every proxy started with the same "
        "--control follows: the kill switch, the sampling percentage, per-endpoint mirroring "
        "and the fleet-wide cap on shadow requests per second. Changes reach every proxy "
        "within a second. Exit status: 0 done, 1 Redis unreachable or its state unreadable, "
        "2 bad arguments.",
    )
    parser.add_argument(
        "--control",
        metavar="URL",
        help="Redis URL, as given to the proxies [env SHADOWPROXY_CONTROL]",
    )
    parser.add_argument("--config", metavar="FILE", type=Path, help="YAML config file, as for run")
    parser.add_argument("--json", action="store_true", help="print the state as JSON")
    actions = parser.add_subparsers(dest="control_action", metavar="ACTION", required=True)
    actions.add_parser("status", help="show the switches and how many proxies listen")
    actions.add_parser("kill", help="stop mirroring everywhere (the kill switch)")
    actions.add_parser("resume", help="turn the kill switch off")
    sample = actions.add_parser("sample", help="set the sampling percentage for the fleet")
    sample.add_argument("value", metavar="PCT", help="0-100, or 'default' for each --sample")
    rate = actions.add_parser("rate", help="cap shadow requests per second for the fleet")
    rate.add_argument("value", metavar="RPS", help="requests per second (0 = no cap), or 'default'")
    endpoint = actions.add_parser("endpoint", help="switch mirroring of one endpoint")
    endpoint.add_argument("name", metavar="NAME", help="endpoint name, e.g. titles.list")
    endpoint.add_argument("state", choices=("on", "off", "clear"), help="on, off, or clear")
    parser.set_defaults(func=run_control)


def build_change(args: argparse.Namespace) -> Change | None:
    """The change an action asks for (``None`` for ``status``); SwitchesError when invalid."""
    action = args.control_action
    if action == "status":
        return None
    if action == "kill":
        return Change(killed=True)
    if action == "resume":
        return Change(killed=False)
    if action == "sample":
        return Change(sample=_number_or_default(args.value, "PCT"))
    if action == "rate":
        return Change(shadow_rps=_number_or_default(args.value, "RPS"))
    mirror = {"on": True, "off": False, "clear": None}[args.state]
    return Change(endpoints=MappingProxyType({args.name: mirror}))


def _number_or_default(text: str, what: str) -> float | None:
    if text.strip().lower() == "default":
        return None
    try:
        return float(text)
    except ValueError:
        raise SwitchesError(f"{what} must be a number or 'default', got {text!r}") from None


def run_control(args: argparse.Namespace) -> int:
    """Apply the action to Redis, print the resulting state; return the exit status."""
    try:
        settings = settings_module.resolve(
            {"control": args.control, "config": args.config}, required=("control",)
        )
        change = build_change(args)
    except (settings_module.SettingsError, SwitchesError) as exc:
        print(f"shadowproxy control: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        state, listening = asyncio.run(_talk(settings.control, change))
    except ControlUnavailableError as exc:
        print(f"shadowproxy control: nothing changed: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except SwitchesError as exc:  # e.g. too many endpoint overrides
        print(f"shadowproxy control: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        body = {"switches": state.to_dict(), "proxies_listening": listening}
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    else:
        print("\n".join(describe(state, _redacted(settings.control), listening)))
    return EXIT_OK


async def _talk(url: str, change: Change | None) -> tuple[Switches, int]:
    plane = ControlPlane(url)
    try:
        state = await plane.fetch() if change is None else await plane.update(change)
        return state, await plane.listeners()
    finally:
        await plane.aclose()


def describe(state: Switches, where: str, listening: int) -> list[str]:
    """Human-readable lines for one state."""
    lines = [
        f"control:     {where} ({listening} {'proxy' if listening == 1 else 'proxies'} listening)",
        f"mirroring:   {'OFF (kill switch on)' if state.killed else 'on'}",
        "sample:      "
        + ("each proxy's --sample" if state.sample is None else f"{state.sample:g}% (fleet-wide)"),
        "shadow rate: " + _rate(state.shadow_rps),
    ]
    if state.endpoints:
        for name, on in sorted(state.endpoints.items()):
            lines.append(f"endpoint:    {name}: {'on' if on else 'off'}")
    else:
        lines.append("endpoints:   no overrides")
    if state.version:
        when = datetime.fromtimestamp(state.updated_at, UTC).isoformat(timespec="seconds")
        lines.append(f"version:     {state.version}, changed {when}")
    else:
        lines.append("version:     0 (never changed)")
    return lines


def _rate(rps: float | None) -> str:
    if rps is None:
        return "each proxy's --shadow-rps"
    return "no cap (fleet-wide)" if rps == 0 else f"{rps:g}/s (fleet-wide)"


def _redacted(url: str) -> str:
    """The URL without its password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
