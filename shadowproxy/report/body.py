"""Stored bodies made readable: undo Content-Encoding, decode UTF-8, keep base64 when that fails.

Bodies are stored as they came off the wire (gzip stays gzip), capped and possibly cut mid-stream;
people want to read them. Decompression is bounded (:data:`DECODED_MAX`) so a stored
decompression bomb cannot blow up the admin process.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass
from typing import Any

import brotli

DECODED_MAX = 4 * 1024 * 1024
"""Bytes of decoded body kept at most; the rest is dropped and ``cut`` is set."""
_CHUNK = 16 * 1024
STORED_DECODED_HEADER = "x-shadowproxy-decoded"
"""Names the Content-Encoding a store removed before keeping the body."""


@dataclass(frozen=True, slots=True)
class BodyView:
    """One body, ready to show."""

    size: int
    """Bytes as stored (before decoding)."""
    encoding: str
    """The Content-Encoding that was undone, here or by the store (``gzip``, ``deflate``, ``br``),
    or ``""``."""
    text: str | None
    """The decoded body as text, when it is valid UTF-8."""
    base64: str | None
    """The decoded body as base64, when it is not valid UTF-8."""
    json: Any = None
    """The parsed document when the text is JSON, else ``None`` (see ``is_json``)."""
    is_json: bool = False
    cut: bool = False
    """True when decoding stopped early (bomb guard) or the stored body was incomplete."""


def view_body(
    body: bytes, headers: tuple[tuple[str, str], ...], *, truncated: bool = False
) -> BodyView:
    """Decode ``body`` for display using the ``Content-Encoding`` found in ``headers``."""
    encoding = _header(headers, "content-encoding").strip().lower()
    data, cut, undone = _decode(body, encoding)
    if not undone:
        # A store may keep bodies decoded already and say so in this header.
        undone = _header(headers, STORED_DECODED_HEADER).strip().lower()
    try:
        text: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    parsed: Any = None
    is_json = False
    if text is not None and (text.lstrip()[:1] in {"{", "["} or _looks_json(headers, text)):
        try:
            # NaN and Infinity are not JSON: a body holding them shows as text.
            parsed = json.loads(text, parse_constant=_reject_constant)
            is_json = True
        except ValueError:
            parsed = None
    return BodyView(
        size=len(body),
        encoding=undone,
        text=text,
        base64=None if text is not None else base64.b64encode(data).decode("ascii"),
        json=parsed,
        is_json=is_json,
        cut=cut or truncated,
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _looks_json(headers: tuple[tuple[str, str], ...], text: str | None) -> bool:
    return text is not None and "json" in _header(headers, "content-type").lower()


def _header(headers: tuple[tuple[str, str], ...], name: str) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value
    return ""


def _decode(body: bytes, encoding: str) -> tuple[bytes, bool, str]:
    """(decoded bytes, cut short?, encoding undone). Unknown or broken encodings leave the body."""
    try:
        if encoding in {"gzip", "x-gzip"}:
            return (*_inflate(body, zlib.MAX_WBITS | 16), "gzip")
        if encoding == "deflate":
            try:
                return (*_inflate(body, zlib.MAX_WBITS), "deflate")
            except zlib.error:
                # Some servers send raw deflate without the zlib header.
                return (*_inflate(body, -zlib.MAX_WBITS), "deflate")
        if encoding == "br":
            return (*_unbrotli(body), "br")
    except (zlib.error, brotli.error):
        return body, False, ""
    return body, False, ""


def _inflate(body: bytes, wbits: int) -> tuple[bytes, bool]:
    inflater = zlib.decompressobj(wbits)
    data = inflater.decompress(body, DECODED_MAX)
    cut = bool(inflater.unconsumed_tail) or not inflater.eof
    return data, cut


def _unbrotli(body: bytes) -> tuple[bytes, bool]:
    decompressor = brotli.Decompressor()
    out = bytearray()
    for start in range(0, len(body), _CHUNK):
        out += decompressor.process(body[start : start + _CHUNK])
        if len(out) > DECODED_MAX:
            return bytes(out[:DECODED_MAX]), True
    return bytes(out), not decompressor.is_finished()
