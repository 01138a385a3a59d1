"""Value rules: instants, coercion, tolerance, normalisation, equivalence and plain equality."""

from __future__ import annotations

import re

import pytest

from shadowproxy.rules.values import (
    MISSING,
    Coercion,
    Equivalence,
    Normalizer,
    Tolerance,
    canonical,
    coerce,
    instant,
    scalar_equal,
)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (1714564800, 1714564800.0),
        (1714564800000, 1714564800.0),
        ("1714564800", 1714564800.0),
        ("2024-05-01T12:00:00Z", 1714564800.0),
        ("2024-05-01T15:00:00+03:00", 1714564800.0),
        ("2024-05-01 12:00:00", 1714564800.0),
        ("2024-05-01T12:00:00.250Z", 1714564800.25),
        ("yesterday", None),
        (True, None),
        (None, None),
    ],
)
def test_instants(value: object, seconds: float | None) -> None:
    """ISO 8601 with any offset (naive is UTC), epoch seconds or milliseconds, as numbers or
    numeric strings; anything else is not an instant."""
    assert seconds == instant(value)


@pytest.mark.parametrize(
    ("value", "target", "expected"),
    [
        ("9174", Coercion.NUMBER, 9174),
        (" 8.5 ", Coercion.NUMBER, 8.5),
        ("nan", Coercion.NUMBER, "nan"),
        ("x", Coercion.NUMBER, "x"),
        (12, Coercion.STRING, "12"),
        (12.0, Coercion.STRING, "12"),
        (True, Coercion.STRING, "true"),
        ("TRUE", Coercion.BOOLEAN, True),
        ("0", Coercion.BOOLEAN, False),
        (1, Coercion.BOOLEAN, True),
        (2, Coercion.BOOLEAN, 2),
    ],
)
def test_coerce(value: object, target: Coercion, expected: object) -> None:
    """Conversions happen when unambiguous; otherwise the value stays as it is."""
    result = coerce(value, target)
    assert (expected, type(expected)) == (result, type(result))


def test_tolerance_absolute_or_relative() -> None:
    """Either bound suffices."""
    assert Tolerance(abs=0.01).within(8.70, 8.709)
    assert not Tolerance(abs=0.01).within(8.70, 8.72)
    assert Tolerance(rel=0.05).within(1000, 1049)
    assert not Tolerance(rel=0.05).within(1000, 1060)


def test_normalizer_order() -> None:
    """NFC, then trim, then the regex, then case fold."""
    norm = Normalizer(pattern=re.compile(r"\s+"), replace=" ", trim=True, casefold=True, nfc=True)
    assert "café au lait" == norm.apply("  Cafe\u0301   AU lait ")


def test_equivalence_is_type_aware() -> None:
    """Classes hold typed values: 0 is not false, and the missing marker is its own value."""
    eq = Equivalence(classes=(frozenset({canonical(None), canonical(""), canonical(MISSING)}),))
    assert eq.same(None, MISSING)
    assert eq.same("", None)
    assert not eq.same(0, None)
    assert not eq.same(False, "")


def test_scalar_equality_keeps_json_types() -> None:
    """true is not 1; 24 equals 24.0 only when asked."""
    assert not scalar_equal(True, 1, True)
    assert scalar_equal(24, 24.0, True)
    assert not scalar_equal(24, 24.0, False)
