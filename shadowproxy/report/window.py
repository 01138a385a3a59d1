"""Time windows as people type them: ``24h``, ``30m``, ``7d``, a Unix timestamp or an ISO date.

A relative value counts back from *now*: ``since=24h`` is "the last 24 hours". The API, the
dashboard and ``shadowproxy report`` all parse windows here, so they agree on what a word means.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


class WindowError(ValueError):
    """A time bound that is neither a duration, a timestamp nor an ISO 8601 date."""


@dataclass(frozen=True, slots=True)
class Window:
    """A closed-open time range in Unix seconds; ``None`` means unbounded on that side."""

    since: float | None = None
    until: float | None = None


def parse_instant(text: str, *, now: float) -> float:
    """One bound: ``30m`` (30 minutes before ``now``), ``1732600000`` or ``2026-11-26T10:00Z``."""
    value = text.strip().lower()
    if relative := _RELATIVE.fullmatch(value):
        return now - float(relative.group(1)) * _UNITS[relative.group(2)]
    if _NUMBER.fullmatch(value):
        instant = float(value)
        if math.isfinite(instant):
            return instant
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise WindowError(
            f"{text!r} is not a time: use a duration like 30m, 24h, 7d, "
            "a Unix timestamp or an ISO 8601 date"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_window(since: str | None, until: str | None, *, now: float) -> Window:
    """Both bounds; empty strings count as absent. ``since`` after ``until`` is an error."""
    start = parse_instant(since, now=now) if since else None
    end = parse_instant(until, now=now) if until else None
    if start is not None and end is not None and start > end:
        raise WindowError(f"since ({since}) is after until ({until})")
    return Window(since=start, until=end)
