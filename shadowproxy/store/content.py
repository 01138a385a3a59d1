"""Content-Encoding removal for stored bodies.

A body is stored decoded, so that a cap cuts readable text rather than a compressed stream, and so
that redaction can see the JSON inside. The headers say what happened: ``Content-Encoding`` is
dropped and ``X-Shadowproxy-Decoded`` names the encoding that was removed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import brotli

from shadowproxy.model import Headers

DECODED_HEADER = "x-shadowproxy-decoded"
"""Added to stored headers when the body was stored decoded; its value is the removed encoding."""

_MAX_DECODED = 32 * 1024 * 1024
"""A decompression bomb stops here; the body is then kept as received."""


@dataclass(frozen=True, slots=True)
class DecodedBody:
    """A body with its content-encoding removed (or left alone when it could not be)."""

    headers: Headers
    body: bytes
    decoded: bool
    """True when ``body`` is the decoded form and ``headers`` were adjusted."""
    final: bool = True
    """False when an encoding is left that could not be removed: cutting such a body would change
    what a later decode makes of it."""


def _decompress(encoding: str, body: bytes) -> bytes:
    if encoding in {"gzip", "x-gzip"}:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        # "deflate" is zlib-wrapped by the RFC, raw in some servers: accept both.
        wrapped = body[:1] and (body[0] & 0x0F) == 8
        inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
    elif encoding == "br":
        out: bytes = brotli.decompress(body)
        if len(out) > _MAX_DECODED:
            raise ValueError("decoded body too large")
        return out
    else:
        raise ValueError(f"unknown content-encoding {encoding!r}")
    out = inflater.decompress(body, _MAX_DECODED)
    if inflater.unconsumed_tail:
        raise ValueError("decoded body too large")
    return out


def decode_body(headers: Headers, body: bytes) -> DecodedBody:
    """Remove the body's Content-Encoding; on failure return it unchanged (``decoded=False``)."""
    encodings = [
        part.strip().lower()
        for key, value in headers
        if key.lower() == "content-encoding"
        for part in value.split(",")
        if part.strip() and part.strip().lower() != "identity"
    ]
    if not encodings or not body:
        return DecodedBody(headers, body, decoded=False)
    data = body
    try:
        for encoding in reversed(encodings):
            data = _decompress(encoding, data)
    except (ValueError, zlib.error, brotli.error):
        return DecodedBody(headers, body, decoded=False, final=False)
    kept = tuple(
        (key, value)
        for key, value in headers
        if key.lower() not in {"content-encoding", "content-length"}
    )
    return DecodedBody((*kept, (DECODED_HEADER, ", ".join(encodings))), data, decoded=True)
