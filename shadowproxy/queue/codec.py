"""A captured exchange as the bytes of one stream entry, and back: explicit, versioned JSON.

Entries cross machines and outlive deployments, so the format is plain JSON (orjson) with bodies in
base64, never pickle: a worker must be able to refuse what it does not understand rather than run
it. Every entry carries a format version (:data:`FORMAT`); a worker that meets a newer one says so
instead of guessing. Decoding checks types, so a hand-written or corrupted entry is a
:class:`QueueCodecError` naming the problem, not a half-built :class:`Exchange`.

An entry's fields::

    v         format version, "1"
    exchange  {"id", "endpoint", "ruleset_version", "request": {...}, "primary": {...},
               "shadow": {...}} — an outcome is a response (status, headers, body, elapsed,
               truncated) or an error (error, elapsed, detail)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from shadowproxy.model import Exchange
from shadowproxy.wire import WireError, exchange_document, exchange_from_document, field

FORMAT = "1"
"""The format version written by this code."""


class QueueCodecError(WireError):
    """The entry is not an exchange this code can read; the message says why."""


@dataclass(frozen=True, slots=True)
class QueuedExchange:
    """What travels from a proxy to a worker: the exchange and the rules version the proxy saw."""

    exchange: Exchange
    """The exchange, its ``endpoint`` named by the proxy (workers keep that name)."""
    ruleset_version: str
    """Version of the rule file the proxy resolved the endpoint under."""


def encode_exchange(exchange: Exchange, ruleset_version: str) -> dict[str, bytes]:
    """The fields of one stream entry. Raises :class:`QueueCodecError` for text JSON cannot hold
    (lone surrogates)."""
    try:
        body = orjson.dumps({**exchange_document(exchange), "ruleset_version": ruleset_version})
    except orjson.JSONEncodeError as exc:
        raise QueueCodecError(f"exchange {exchange.id} cannot be encoded: {exc}") from None
    return {"v": FORMAT.encode(), "exchange": body}


def decode_exchange(fields: Mapping[bytes, bytes]) -> QueuedExchange:
    """The exchange :func:`encode_exchange` wrote; :class:`QueueCodecError` for anything else."""
    version = fields.get(b"v")
    if version != FORMAT.encode():
        shown = version.decode("utf-8", "replace") if version is not None else "none"
        raise QueueCodecError(f"entry format version {shown!r}; this worker reads version {FORMAT}")
    data = fields.get(b"exchange")
    if data is None:
        raise QueueCodecError("entry has no 'exchange' field")
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise QueueCodecError(f"entry is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise QueueCodecError("entry is not a JSON object")
    try:
        exchange = exchange_from_document(doc)
        ruleset_version = field(doc, "ruleset_version", str, "exchange")
    except WireError as exc:
        raise QueueCodecError(str(exc)) from None
    return QueuedExchange(exchange, ruleset_version)
