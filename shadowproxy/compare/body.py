"""A response body made comparable: Content-Encoding undone, content type classified, JSON parsed.

Every failure is a value, never an exception: a body that cannot be decoded or parsed comes back
as a :class:`Body` with ``problem`` set, which the comparator turns into an ``unparseable``
difference. Decoding is bounded (``limit``), so a compression bomb is refused, not expanded.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import brotli
import orjson

DECODED_LIMIT = 64 * 1024 * 1024
"""Largest decoded body compared, bytes; beyond it the comparison is skipped as too large."""


_BOM = b"\xef\xbb\xbf"


class TooLargeError(Exception):
    """The decoded body would exceed the limit."""


class DecodeError(Exception):
    """The body is not valid in its declared Content-Encoding."""


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(data, limit + 1)
    if len(out) > limit:
        raise TooLargeError
    if not inflater.eof:
        raise DecodeError("the compressed stream ends early")
    return out


def _brotli(data: bytes, limit: int) -> bytes:
    decompressor = brotli.Decompressor()
    out = decompressor.process(data, output_buffer_limit=limit + 1)
    if len(out) > limit:
        raise TooLargeError
    if not decompressor.is_finished():
        raise DecodeError("the compressed stream ends early")
    return bytes(out)


def decode(data: bytes, content_encoding: str | None, limit: int = DECODED_LIMIT) -> bytes:
    """``data`` with its Content-Encoding(s) undone (gzip, x-gzip, deflate — zlib-wrapped or raw —
    br, identity). Raises :class:`DecodeError` or :class:`TooLargeError`."""
    if not content_encoding:
        return data
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    # Codings are listed in the order they were applied: undo them last to first.
    for coding in reversed(codings):
        try:
            if coding in ("gzip", "x-gzip"):
                data = _inflate(data, 16 + zlib.MAX_WBITS, limit)
            elif coding == "deflate":
                try:
                    data = _inflate(data, zlib.MAX_WBITS, limit)
                except zlib.error:
                    # Many servers send raw DEFLATE under "deflate" (RFC 9110 says zlib format).
                    data = _inflate(data, -zlib.MAX_WBITS, limit)
            elif coding == "br":
                data = _brotli(data, limit)
            elif coding != "identity":
                raise DecodeError(f"unsupported content-encoding {coding!r}")
        except (zlib.error, brotli.error, DecodeError) as exc:
            raise DecodeError(f"content-encoding {coding}: {exc}") from None
    return data


def is_json_type(content_type: str | None) -> bool:
    """True for ``application/json``, ``*/*+json`` and ``text/json`` (parameters ignored)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("application/json", "text/json") or media.endswith("+json")


def looks_like_json(data: bytes) -> bool:
    """True when the first non-blank byte opens an object or array (for untyped bodies)."""
    stripped = data.lstrip(b" \t\r\n\xef\xbb\xbf")[:1]
    return stripped in (b"{", b"[")


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed JSON document, or why it could not be parsed."""

    ok: bool
    value: Any = None
    problem: str = ""


def parse_json(data: bytes) -> Parsed:
    """``data`` parsed with orjson (strict RFC 8259: NaN, Infinity, invalid UTF-8 and nesting deeper
    than 1024 are refused; of duplicate keys the last wins, as in JavaScript; a leading UTF-8
    byte order mark is skipped)."""
    if data.startswith(_BOM):
        # A byte order mark is legal before UTF-8 JSON in practice, if not in RFC 8259.
        data = data[len(_BOM) :]
    try:
        return Parsed(ok=True, value=orjson.loads(data))
    except orjson.JSONDecodeError as exc:
        return Parsed(ok=False, problem=f"not valid JSON: {exc}")


def excerpt(data: bytes, limit: int = 200) -> str:
    """The start of ``data`` for people: text when it decodes as UTF-8, else a byte count."""
    head = data[:limit]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = data[: limit - 3].decode("utf-8")
        except UnicodeDecodeError:
            return f"<{len(data)} bytes, not UTF-8>"
    return text + ("…" if len(data) > limit else "")
