"""Comparisons survive the trip through the spool's line format unchanged."""

from __future__ import annotations

import pytest

from shadowproxy.model import BackendError, Difference, DiffKind, ErrorKind, Severity, Verdict
from shadowproxy.store.codec import CodecError, decode_comparison, encode_comparison
from tests.factories import make_comparison


@pytest.mark.parametrize("verdict", list(Verdict))
def test_round_trip_is_lossless(verdict: Verdict) -> None:
    """Every field, including bytes, JSON value types and error outcomes, comes back equal."""
    comparison = make_comparison(
        verdict=verdict,
        differences=(
            Difference("/a/0", "/a/*", DiffKind.TYPE, 24, 24.0, Severity.CRITICAL, "/a/[id=1]"),
            Difference("/big", "/big", DiffKind.VALUE, 2**80, {"$k.x": [None]}),
        ),
    )

    encoded = encode_comparison(comparison)

    assert b"\n" not in encoded
    decoded = decode_comparison(encoded)
    assert comparison == decoded
    assert isinstance(decoded.differences[0].shadow, float)


def test_an_error_outcome_round_trips() -> None:
    """A backend error keeps its kind, elapsed time and detail."""
    comparison = make_comparison(
        verdict=Verdict.SHADOW_ERROR, shadow=BackendError(ErrorKind.RESET, 0.5, "reset by peer")
    )

    assert comparison == decode_comparison(encode_comparison(comparison))


@pytest.mark.parametrize("data", [b"", b"{}", b"not json", b'{"id": 1}'])
def test_anything_else_is_a_codec_error(data: bytes) -> None:
    """Bytes that are not an encoded comparison raise CodecError."""
    with pytest.raises(CodecError):
        decode_comparison(data)
