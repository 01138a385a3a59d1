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

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from shadowproxy.model import (
    BackendError,
    CapturedRequest,
    CapturedResponse,
    ErrorKind,
    Exchange,
    Headers,
    Outcome,
)

FORMAT = "1"
"""The format version written by this code."""


class QueueCodecError(ValueError):
    """The entry is not an exchange this code can read; the message says why."""


@dataclass(frozen=True, slots=True)
class QueuedExchange:
    """What travels from a proxy to a worker: the exchange and the rules version the proxy saw."""

    exchange: Exchange
    """The exchange, its ``endpoint`` named by the proxy (workers keep that name)."""
    ruleset_version: str
    """Version of the rule file the proxy resolved the endpoint under."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _outcome(outcome: Outcome) -> dict[str, Any]:
    if isinstance(outcome, BackendError):
        return {"error": outcome.kind.value, "elapsed": outcome.elapsed, "detail": outcome.detail}
    return {
        "status": outcome.status,
        "headers": outcome.headers,
        "body": _b64(outcome.body),
        "elapsed": outcome.elapsed,
        "truncated": outcome.truncated,
    }


def encode_exchange(exchange: Exchange, ruleset_version: str) -> dict[str, bytes]:
    """The fields of one stream entry. Raises :class:`QueueCodecError` for text JSON cannot hold
    (lone surrogates)."""
    request = exchange.request
    try:
        body = orjson.dumps(
            {
                "id": exchange.id,
                "endpoint": exchange.endpoint,
                "ruleset_version": ruleset_version,
                "request": {
                    "method": request.method,
                    "path": request.path,
                    "query": request.query,
                    "headers": request.headers,
                    "body": _b64(request.body),
                    "received_at": request.received_at,
                },
                "primary": _outcome(exchange.primary),
                "shadow": _outcome(exchange.shadow),
            }
        )
    except orjson.JSONEncodeError as exc:
        raise QueueCodecError(f"exchange {exchange.id} cannot be encoded: {exc}") from None
    return {"v": FORMAT.encode(), "exchange": body}


# --- decoding, checked ----------------------------------------------------------------------------


def _field(doc: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if name not in doc:
        raise QueueCodecError(f"{where}: missing {name!r}")
    value = doc[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int in Python; a JSON true is never a number here.
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise QueueCodecError(f"{where}: {name!r} has the wrong type ({type(value).__name__})")
    return value


def _mapping(doc: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    value: Mapping[str, Any] = _field(doc, name, dict, where)
    return value


def _headers(doc: Mapping[str, Any], where: str) -> Headers:
    raw = _field(doc, "headers", list, where)
    pairs: list[tuple[str, str]] = []
    for pair in raw:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(part, str) for part in pair)
        ):
            raise QueueCodecError(f"{where}: headers must be [name, value] string pairs")
        pairs.append((pair[0], pair[1]))
    return tuple(pairs)


def _bytes(doc: Mapping[str, Any], name: str, where: str) -> bytes:
    text = _field(doc, name, str, where)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise QueueCodecError(f"{where}: {name!r} is not base64") from None


def _outcome_from(doc: Mapping[str, Any], where: str) -> Outcome:
    elapsed = float(_field(doc, "elapsed", (int, float), where))
    if "error" in doc:
        kind = _field(doc, "error", str, where)
        try:
            error = ErrorKind(kind)
        except ValueError:
            raise QueueCodecError(f"{where}: unknown error kind {kind!r}") from None
        return BackendError(error, elapsed, _field(doc, "detail", str, where))
    return CapturedResponse(
        status=_field(doc, "status", int, where),
        headers=_headers(doc, where),
        body=_bytes(doc, "body", where),
        elapsed=elapsed,
        truncated=_field(doc, "truncated", bool, where),
    )


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
    request = _mapping(doc, "request", "exchange")
    exchange = Exchange(
        id=_field(doc, "id", str, "exchange"),
        endpoint=_field(doc, "endpoint", str, "exchange"),
        request=CapturedRequest(
            method=_field(request, "method", str, "request"),
            path=_field(request, "path", str, "request"),
            query=_field(request, "query", str, "request"),
            headers=_headers(request, "request"),
            body=_bytes(request, "body", "request"),
            received_at=float(_field(request, "received_at", (int, float), "request")),
        ),
        primary=_outcome_from(_mapping(doc, "primary", "exchange"), "primary"),
        shadow=_outcome_from(_mapping(doc, "shadow", "exchange"), "shadow"),
    )
    return QueuedExchange(exchange, _field(doc, "ruleset_version", str, "exchange"))
