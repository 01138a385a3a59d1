"""Value rules: how two leaf values are judged equal under ``tolerance``, ``coerce``,
``equivalent``, ``normalize`` and ``timestamps``.

Each rule is a small frozen object built once when the rule file loads (regexes compiled then);
the walk calls :func:`leaf_equal` only at paths a rule names, so no rule costs anything elsewhere.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

MISSING: Any = object()
"""Stands for an absent key or array element while comparing."""

EPOCH_MS_THRESHOLD = 100_000_000_000
"""Epoch numbers at or above this are milliseconds (1e11 seconds is the year 5138)."""


class Coercion(StrEnum):
    """The type both sides are converted to before comparing."""

    NUMBER = "number"
    STRING = "string"
    BOOLEAN = "boolean"


@dataclass(frozen=True, slots=True)
class Tolerance:
    """Numbers within ``abs`` of each other, or ``rel`` times the larger magnitude, are equal."""

    abs: float = 0.0
    rel: float = 0.0

    def within(self, a: float, b: float) -> bool:
        delta = abs(a - b)
        return delta <= self.abs or delta <= self.rel * max(abs(a), abs(b))


@dataclass(frozen=True, slots=True)
class Normalizer:
    """String normalisation applied to both sides, in this order: NFC, trim, regex, case fold."""

    pattern: re.Pattern[str] | None = None
    replace: str = ""
    trim: bool = False
    casefold: bool = False
    nfc: bool = False

    def apply(self, text: str) -> str:
        if self.nfc:
            text = unicodedata.normalize("NFC", text)
        if self.trim:
            text = text.strip()
        if self.pattern is not None:
            text = self.pattern.sub(self.replace, text)
        if self.casefold:
            text = text.casefold()
        return text


@dataclass(frozen=True, slots=True)
class Equivalence:
    """Classes of values that count as the same (e.g. null, "" and an absent key)."""

    classes: tuple[frozenset[tuple[Any, ...]], ...]
    """Each class as a set of :func:`canonical` forms; ``("missing",)`` is the absent key."""

    def same(self, a: Any, b: Any) -> bool:
        ca, cb = canonical(a), canonical(b)
        return any(ca in cls and cb in cls for cls in self.classes)


@dataclass(frozen=True, slots=True)
class TimestampRule:
    """Both sides are instants (ISO 8601 with any offset, epoch s or ms) within ``tolerance_s``."""

    tolerance_s: float = 0.0


def canonical(value: Any) -> tuple[Any, ...]:
    """A hashable, JSON-type-aware form of ``value``: ``true`` and ``1`` differ, ``1`` and ``1.0``
    do not. Containers become their sorted-key serialisation."""
    if value is MISSING:
        return ("missing",)
    if value is None:
        return ("null",)
    kind = type(value)
    if kind is bool:
        return ("bool", value)
    if kind is int or kind is float:
        return ("number", value)
    if kind is str:
        return ("string", value)
    try:
        return ("json", orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    except (TypeError, orjson.JSONEncodeError, RecursionError):
        # Nested too deep to serialise: equal only to itself (the walk then compares it by
        # structure, level by level).
        return ("opaque", id(value))


def is_number(value: Any) -> bool:
    """True for JSON numbers (Python int or float, not bool)."""
    kind = type(value)
    return kind is int or kind is float


def coerce(value: Any, target: Coercion) -> Any:
    """``value`` converted to ``target`` when that is unambiguous; otherwise unchanged."""
    if target is Coercion.NUMBER:
        if type(value) is str:
            text = value.strip()
            try:
                return int(text)
            except ValueError:
                try:
                    number = float(text)
                except ValueError:
                    return value
                return number if math.isfinite(number) else value
        return value
    if target is Coercion.STRING:
        if is_number(value):
            if type(value) is float and value.is_integer():
                return str(int(value))
            return str(value)
        if type(value) is bool:
            return "true" if value else "false"
        return value
    if type(value) is str:
        lowered = value.strip().lower()
        if lowered in {"true", "1"}:
            return True
        if lowered in {"false", "0"}:
            return False
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    return value


def instant(value: Any) -> float | None:
    """Unix seconds for an ISO 8601 string (naive means UTC) or an epoch number (s or ms,
    also as a numeric string); ``None`` when ``value`` is neither."""
    if type(value) is str:
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                return None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment.timestamp()
        value = number
    if is_number(value):
        number = float(value)
        if not math.isfinite(number):
            return None
        return number / 1000.0 if abs(number) >= EPOCH_MS_THRESHOLD else number
    return None


def scalar_equal(a: Any, b: Any, int_float_equal: bool) -> bool:
    """Plain JSON equality of two values: types must agree (``true`` is not ``1``); ``24`` equals
    ``24.0`` only when ``int_float_equal``."""
    ta, tb = type(a), type(b)
    if ta is tb:
        return bool(a == b)
    if int_float_equal and (ta is int or ta is float) and (tb is int or tb is float):
        return bool(a == b)
    return False
