"""Stored bodies become readable text: encodings undone, non-UTF-8 kept as base64, bounded."""

from __future__ import annotations

import base64
import gzip
import zlib

import brotli
import pytest

from shadowproxy.report.body import DECODED_MAX, view_body

DOC = '{"names": {"ru": "Твоё имя"}, "id": 9174}'.encode()


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        ("gzip", gzip.compress(DOC)),
        ("deflate", zlib.compress(DOC)),
        ("deflate", _raw_deflate(DOC)),
        ("br", brotli.compress(DOC)),
    ],
)
def test_content_encodings_are_undone(encoding: str, encoded: bytes) -> None:
    """gzip, zlib deflate, raw deflate and brotli all decode to the JSON document."""
    view = view_body(encoded, (("Content-Encoding", encoding),))
    assert (encoding, DOC.decode(), True, {"names": {"ru": "Твоё имя"}, "id": 9174}) == (
        view.encoding,
        view.text,
        view.is_json,
        view.json,
    )


def test_store_decoded_bodies_keep_their_encoding_name() -> None:
    """A body the store already decoded says which encoding it had."""
    view = view_body(DOC, (("x-shadowproxy-decoded", "gzip"),))
    assert ("gzip", DOC.decode()) == (view.encoding, view.text)


def test_binary_bodies_are_base64() -> None:
    """Bytes that are not UTF-8 come back as base64, not as mangled text."""
    raw = b"\x89PNG\r\n\x1a\n\x00\xff"
    view = view_body(raw, (("content-type", "image/png"),))
    assert (None, raw, False) == (view.text, base64.b64decode(view.base64 or ""), view.is_json)


@pytest.mark.parametrize(
    "text", ['{"a": NaN}', '{"a": Infinity}', "{not json", '"just a string"', "plain text"]
)
def test_not_json_stays_text(text: str) -> None:
    """NaN/Infinity, broken JSON and non-object text show as text, not as parsed JSON."""
    view = view_body(text.encode(), (("content-type", "text/plain"),))
    assert (text, False) == (view.text, view.is_json)


def test_decompression_is_bounded() -> None:
    """A gzip bomb stops at DECODED_MAX and says it was cut."""
    bomb = gzip.compress(b"0" * (DECODED_MAX * 2))
    view = view_body(bomb, (("content-encoding", "gzip"),))
    assert (DECODED_MAX, True) == (len(view.text or ""), view.cut)


def test_broken_encoding_leaves_the_body() -> None:
    """Bytes that do not decode as the claimed encoding are shown as they are."""
    view = view_body(b"not gzip at all", (("content-encoding", "gzip"),))
    assert ("", "not gzip at all") == (view.encoding, view.text)
