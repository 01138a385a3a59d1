"""A :class:`~shadowproxy.model.Comparison` as one line of JSON, and back, for the disk spool.

Lossless for everything a comparison holds: bodies travel as base64, difference values as JSON
text (see :func:`shadowproxy.store.document.dump_value`).
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from shadowproxy.model import (
    BackendError,
    CapturedRequest,
    CapturedResponse,
    Comparison,
    Difference,
    DiffKind,
    ErrorKind,
    Exchange,
    Outcome,
    Severity,
    Verdict,
)
from shadowproxy.store.document import dump_value, load_value


class CodecError(ValueError):
    """The bytes are not an encoded comparison."""


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


def _outcome_from(doc: dict[str, Any]) -> Outcome:
    if "error" in doc:
        return BackendError(ErrorKind(doc["error"]), float(doc["elapsed"]), doc.get("detail", ""))
    return CapturedResponse(
        status=int(doc["status"]),
        headers=tuple((str(k), str(v)) for k, v in doc["headers"]),
        body=base64.b64decode(doc["body"]),
        elapsed=float(doc["elapsed"]),
        truncated=bool(doc["truncated"]),
    )


def encode_comparison(comparison: Comparison) -> bytes:
    """One line of JSON (no newline inside)."""
    exchange = comparison.exchange
    request = exchange.request
    return orjson.dumps(
        {
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
            "primary": _outcome(exchange.primary),
            "shadow": _outcome(exchange.shadow),
            "verdict": comparison.verdict.value,
            "differences": [
                [d.pointer, d.template, d.kind.value, dump_value(d.primary), dump_value(d.shadow),
                 d.severity.value, d.label]
                for d in comparison.differences
            ],
            "ruleset_version": comparison.ruleset_version,
            "fingerprint": comparison.fingerprint,
            "reason": comparison.reason,
            "duration": comparison.duration,
            "critical": comparison.critical,
        }
    )


def decode_comparison(data: bytes) -> Comparison:
    """The comparison :func:`encode_comparison` wrote; :class:`CodecError` for anything else."""
    try:
        doc = orjson.loads(data)
        request = doc["request"]
        return Comparison(
            exchange=Exchange(
                id=doc["id"],
                endpoint=doc["endpoint"],
                request=CapturedRequest(
                    method=request["method"],
                    path=request["path"],
                    query=request["query"],
                    headers=tuple((str(k), str(v)) for k, v in request["headers"]),
                    body=base64.b64decode(request["body"]),
                    received_at=float(request["received_at"]),
                ),
                primary=_outcome_from(doc["primary"]),
                shadow=_outcome_from(doc["shadow"]),
            ),
            verdict=Verdict(doc["verdict"]),
            differences=tuple(
                Difference(
                    pointer=p, template=t, kind=DiffKind(k), primary=load_value(pv),
                    shadow=load_value(sv), severity=Severity(sev), label=label,
                )
                for p, t, k, pv, sv, sev, label in doc["differences"]
            ),
            ruleset_version=doc["ruleset_version"],
            fingerprint=doc["fingerprint"],
            reason=doc["reason"],
            duration=float(doc["duration"]),
            critical=bool(doc["critical"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CodecError(f"not an encoded comparison: {exc}") from None
