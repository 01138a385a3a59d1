"""The JSON form of an :class:`~shadowproxy.model.Exchange`, shared by everything that writes one
down: the store's disk spool and the Redis Streams queue.

Plain JSON (orjson) with bodies in base64, never pickle: what is read back may come from another
machine or an older deployment, and must be refused with a clear reason rather than run. Reading
checks every field's type, so a corrupted or hand-written document is a :class:`WireError` naming
the problem, not a half-built exchange.

A document::

    {"id", "endpoint", "request": {"method", "path", "query", "headers", "body", "received_at"},
     "primary": outcome, "shadow": outcome}

where an outcome is a response ``{"status", "headers", "body", "elapsed", "truncated"}`` or an
error ``{"error", "elapsed", "detail"}``, headers are ``[name, value]`` pairs and bodies base64.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from shadowproxy.model import (
    BackendError,
    CapturedRequest,
    CapturedResponse,
    ErrorKind,
    Exchange,
    Headers,
    Outcome,
)


class WireError(ValueError):
    """The document is not an exchange this code can read; the message says why."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def outcome_document(outcome: Outcome) -> dict[str, Any]:
    if isinstance(outcome, BackendError):
        return {"error": outcome.kind.value, "elapsed": outcome.elapsed, "detail": outcome.detail}
    return {
        "status": outcome.status,
        "headers": outcome.headers,
        "body": _b64(outcome.body),
        "elapsed": outcome.elapsed,
        "truncated": outcome.truncated,
    }


def exchange_document(exchange: Exchange) -> dict[str, Any]:
    """The exchange as a JSON-ready dict (add fields of your own beside these keys)."""
    request = exchange.request
    return {
        "id": exchange.id,
        "endpoint": exchange.endpoint,
        "request": {
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "headers": request.headers,
            "body": _b64(request.body),
            "received_at": request.received_at,
        },
        "primary": outcome_document(exchange.primary),
        "shadow": outcome_document(exchange.shadow),
    }


# --- reading, checked ----------------------------------------------------------------------------


def field(doc: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``doc[name]``, checked to be of ``kind``; :class:`WireError` naming ``where`` otherwise."""
    if name not in doc:
        raise WireError(f"{where}: missing {name!r}")
    value = doc[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int in Python; a JSON true is never a number here.
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise WireError(f"{where}: {name!r} has the wrong type ({type(value).__name__})")
    return value


def _mapping(doc: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    value: Mapping[str, Any] = field(doc, name, dict, where)
    return value


def _headers(doc: Mapping[str, Any], where: str) -> Headers:
    raw = field(doc, "headers", list, where)
    pairs: list[tuple[str, str]] = []
    for pair in raw:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(part, str) for part in pair)
        ):
            raise WireError(f"{where}: headers must be [name, value] string pairs")
        pairs.append((pair[0], pair[1]))
    return tuple(pairs)


def _bytes(doc: Mapping[str, Any], name: str, where: str) -> bytes:
    text = field(doc, name, str, where)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise WireError(f"{where}: {name!r} is not base64") from None


def outcome_from_document(doc: Mapping[str, Any], where: str) -> Outcome:
    elapsed = float(field(doc, "elapsed", (int, float), where))
    if "error" in doc:
        kind = field(doc, "error", str, where)
        try:
            error = ErrorKind(kind)
        except ValueError:
            raise WireError(f"{where}: unknown error kind {kind!r}") from None
        return BackendError(error, elapsed, field(doc, "detail", str, where))
    return CapturedResponse(
        status=field(doc, "status", int, where),
        headers=_headers(doc, where),
        body=_bytes(doc, "body", where),
        elapsed=elapsed,
        truncated=field(doc, "truncated", bool, where),
    )


def exchange_from_document(doc: Any) -> Exchange:
    """The exchange :func:`exchange_document` wrote; :class:`WireError` for anything else."""
    if not isinstance(doc, dict):
        raise WireError("exchange is not a JSON object")
    request = _mapping(doc, "request", "exchange")
    return Exchange(
        id=field(doc, "id", str, "exchange"),
        endpoint=field(doc, "endpoint", str, "exchange"),
        request=CapturedRequest(
            method=field(request, "method", str, "request"),
            path=field(request, "path", str, "request"),
            query=field(request, "query", str, "request"),
            headers=_headers(request, "request"),
            body=_bytes(request, "body", "request"),
            received_at=float(field(request, "received_at", (int, float), "request")),
        ),
        primary=outcome_from_document(_mapping(doc, "primary", "exchange"), "primary"),
        shadow=outcome_from_document(_mapping(doc, "shadow", "exchange"), "shadow"),
    )
