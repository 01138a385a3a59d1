"""Stored bodies are decoded from their Content-Encoding, and the headers say so."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest

from shadowproxy.store.content import DECODED_HEADER, decode_body

BODY = '{"names": {"ru": "Твоё имя"}}'.encode()


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        ("gzip", gzip.compress(BODY)),
        ("deflate", zlib.compress(BODY)),
        ("deflate", zlib.compress(BODY)[2:-4]),  # raw deflate, as some servers send
        ("br", brotli.compress(BODY)),
    ],
)
def test_known_encodings_are_removed(encoding: str, encoded: bytes) -> None:
    """The decoded body, without Content-Encoding/Length, with a note of what was removed."""
    headers = (
        ("Content-Type", "application/json"),
        ("Content-Encoding", encoding),
        ("Content-Length", str(len(encoded))),
    )

    decoded = decode_body(headers, encoded)

    assert BODY == decoded.body
    assert (("Content-Type", "application/json"), (DECODED_HEADER, encoding)) == decoded.headers


def test_a_cut_gzip_stream_yields_its_beginning() -> None:
    """A capture cap that cut the compressed stream still gives the readable start."""
    big = b'{"list": [' + b'{"id": 1, "x": "yyyyyyyy"},' * 5000 + b"{}]}"
    encoded = gzip.compress(big)

    decoded = decode_body((("content-encoding", "gzip"),), encoded[: len(encoded) // 2])

    assert decoded.decoded
    assert big.startswith(decoded.body)
    assert len(decoded.body) > 1000


@pytest.mark.parametrize(
    "headers", [(("content-encoding", "gzip"),), (("content-encoding", "zstd"),)]
)
def test_undecodable_bodies_are_left_alone(headers: tuple[tuple[str, str], ...]) -> None:
    """Garbage or an unknown encoding: body and headers unchanged."""
    decoded = decode_body(headers, b"\x00garbage")

    assert (headers, b"\x00garbage", False) == (decoded.headers, decoded.body, decoded.decoded)
