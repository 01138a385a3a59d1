"""Body decoding and classification."""

from __future__ import annotations

import gzip

import brotli
import pytest

from shadowproxy.compare.body import (
    DecodeError,
    TooLargeError,
    decode,
    excerpt,
    is_json_type,
    looks_like_json,
    parse_json,
)


def test_stacked_encodings_are_undone_last_first() -> None:
    """``Content-Encoding: gzip, br`` means gzip first, then br: undone br first."""
    data = b'{"a": 1}'
    assert data == decode(brotli.compress(gzip.compress(data)), "gzip, br")


def test_unknown_encoding_is_an_error() -> None:
    """An encoding we cannot undo is reported, not passed through as garbage."""
    with pytest.raises(DecodeError, match="zstd"):
        decode(b"...", "zstd")


def test_limit_applies_to_decoded_size() -> None:
    """The limit bounds what decoding produces, so a bomb stops early."""
    with pytest.raises(TooLargeError):
        decode(gzip.compress(b"0" * 100_000), "gzip", limit=10_000)
    assert b"0" * 10_000 == decode(gzip.compress(b"0" * 10_000), "gzip", limit=10_000)


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/problem+json", True),
        ("text/html", False),
        (None, False),
    ],
)
def test_json_content_types(content_type: str | None, expected: bool) -> None:
    """JSON media types, parameters and case ignored; +json suffixes count."""
    assert expected == is_json_type(content_type)


def test_untyped_bodies_are_sniffed() -> None:
    """Without a content type, a body opening an object or array is taken for JSON."""
    assert looks_like_json(b'\n  {"a": 1}')
    assert not looks_like_json(b"<html>")


def test_parse_failures_are_values() -> None:
    """Parsing never raises: a failure carries the reason."""
    parsed = parse_json(b"{oops")
    assert (False, None) == (parsed.ok, parsed.value)
    assert parsed.problem.startswith("not valid JSON")


def test_excerpt_is_safe_for_binary() -> None:
    """Bytes that are not UTF-8 are described, not decoded into mojibake."""
    assert "<4 bytes, not UTF-8>" == excerpt(b"\xff\xfe\xfd\xfc")
    assert "ab" == excerpt(b"ab")
    assert "aaa…" == excerpt(b"aaaa", limit=3)
