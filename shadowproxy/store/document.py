"""What the engines store, computed once for both: records, group keys and per-batch tallies.

A :class:`~shadowproxy.model.Comparison` becomes, in every engine:

- counter increments per (minute, endpoint) for its verdict, and a latency bucket per backend;
- for mismatches and shadow errors: a :class:`~shadowproxy.store.contract.MismatchRecord` (bodies
  decoded and capped, differences capped), a group update and per-field counts.

Difference values are kept as JSON text, so ``24`` and ``24.0`` stay distinct and no engine has to
accept arbitrary keys (``$ref``, dotted names) or integers wider than 64 bits.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from shadowproxy.model import BackendError, Comparison, Outcome, Verdict
from shadowproxy.store import latency
from shadowproxy.store.content import decode_body
from shadowproxy.store.contract import (
    EndpointSummary,
    MismatchRecord,
    StoredDifference,
    StoredResponse,
)

RECORDED = frozenset({Verdict.MISMATCH, Verdict.SHADOW_ERROR})
"""Verdicts whose comparisons are stored in full (the rest are only counted)."""

MAX_DIFFERENCES = 1000
"""Differences kept per record; a wholesale rewrite of a large list must not make a huge record."""

EXAMPLES_PER_GROUP = 5
"""Example exchange ids kept on a group."""

SEEN_WINDOW = 3600.0
"""Seconds an exchange id is remembered after it was counted. Duplicates of single exchanges
come soon after the first write (a worker's reclaimed stream entry, a spool segment replayed
after a crash); a whole batch retried after a long outage is caught by its :func:`batch_key`,
kept for the full retention. This keeps the per-exchange memory at minutes of traffic, not weeks.
"""

PRIMARY, SHADOW = "primary", "shadow"


def minute_of(at: float) -> int:
    """Start of the minute containing ``at`` (Unix seconds)."""
    return int(at // 60) * 60


def hour_of(at: float) -> int:
    """Start of the hour containing ``at`` (Unix seconds)."""
    return int(at // 3600) * 3600


def signature_of(comparison: Comparison) -> tuple[tuple[str, str], ...]:
    """Sorted distinct (template, kind) pairs: what makes mismatches identical."""
    return tuple(sorted({(d.template, d.kind.value) for d in comparison.differences}))


def group_key(comparison: Comparison) -> str:
    """The comparison's fingerprint, or one derived like it when the comparator left it empty."""
    if comparison.fingerprint:
        return comparison.fingerprint
    parts = [comparison.exchange.endpoint, comparison.verdict.value, comparison.reason]
    parts += [f"{t}\x00{k}" for t, k in signature_of(comparison)]
    return hashlib.sha256("\x01".join(parts).encode()).hexdigest()[:16]


def batch_key(comparisons: Iterable[Comparison]) -> str:
    """Identifies a batch by its set of exchange ids: a retried batch has the same key."""
    ids = sorted({c.exchange.id for c in comparisons})
    return hashlib.sha256("\x00".join(ids).encode()).hexdigest()[:32]


def elapsed_ms(outcome: Outcome) -> float:
    return round(outcome.elapsed * 1000.0, 3)


def dump_value(value: Any) -> str:
    """JSON text of a difference value (stdlib fallback for integers wider than 64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, default=str, ensure_ascii=False)


def load_value(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _stored_response(outcome: Outcome, body_max: int) -> StoredResponse:
    if isinstance(outcome, BackendError):
        return StoredResponse(None, (), b"", elapsed_ms(outcome), error=outcome.kind.value)
    decoded = decode_body(outcome.headers, outcome.body)
    body = decoded.body
    return StoredResponse(
        status=outcome.status,
        headers=decoded.headers,
        body=body[:body_max],
        elapsed_ms=elapsed_ms(outcome),
        truncated=outcome.truncated or len(body) > body_max,
    )


def to_record(comparison: Comparison, body_max: int) -> MismatchRecord:
    """The stored form of one comparison (call only for :data:`RECORDED` verdicts)."""
    exchange = comparison.exchange
    request = exchange.request
    request_body = decode_body(request.headers, request.body)
    return MismatchRecord(
        id=exchange.id,
        at=request.received_at,
        endpoint=exchange.endpoint,
        method=request.method,
        target=request.target,
        request_headers=request_body.headers,
        request_body=request_body.body[:body_max],
        primary=_stored_response(exchange.primary, body_max),
        shadow=_stored_response(exchange.shadow, body_max),
        verdict=comparison.verdict.value,
        differences=tuple(
            StoredDifference(
                pointer=d.pointer,
                template=d.template,
                kind=d.kind.value,
                primary=d.primary,
                shadow=d.shadow,
                severity=d.severity.value,
                label=d.label,
            )
            for d in comparison.differences[:MAX_DIFFERENCES]
        ),
        fingerprint=group_key(comparison),
        ruleset_version=comparison.ruleset_version,
        reason=comparison.reason,
    )


# --- record <-> document ------------------------------------------------------------------------


def _body_out(body: bytes, binary: bool) -> Any:
    return body if binary else base64.b64encode(body).decode("ascii")


def _body_in(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return base64.b64decode(value)


def _response_doc(response: StoredResponse, binary: bool) -> dict[str, Any]:
    return {
        "status": response.status,
        "headers": [list(h) for h in response.headers],
        "body": _body_out(response.body, binary),
        "elapsed_ms": response.elapsed_ms,
        "truncated": response.truncated,
        "error": response.error,
    }


def _response_from(doc: dict[str, Any]) -> StoredResponse:
    return StoredResponse(
        status=doc["status"],
        headers=tuple((str(k), str(v)) for k, v in doc["headers"]),
        body=_body_in(doc["body"]),
        elapsed_ms=float(doc["elapsed_ms"]),
        truncated=bool(doc["truncated"]),
        error=doc["error"],
    )


def record_to_doc(record: MismatchRecord, *, binary: bool) -> dict[str, Any]:
    """A plain document; bodies as bytes (``binary``, for BSON) or base64 text (for JSON)."""
    return {
        "_id": record.id,
        "at": record.at,
        "endpoint": record.endpoint,
        "method": record.method,
        "target": record.target,
        "request_headers": [list(h) for h in record.request_headers],
        "request_body": _body_out(record.request_body, binary),
        "primary": _response_doc(record.primary, binary),
        "shadow": _response_doc(record.shadow, binary),
        "verdict": record.verdict,
        "differences": [
            {
                "pointer": d.pointer,
                "template": d.template,
                "kind": d.kind,
                "primary": dump_value(d.primary),
                "shadow": dump_value(d.shadow),
                "severity": d.severity,
                "label": d.label,
            }
            for d in record.differences
        ],
        "fingerprint": record.fingerprint,
        "ruleset_version": record.ruleset_version,
        "reason": record.reason,
    }


def record_from_doc(doc: dict[str, Any]) -> MismatchRecord:
    return MismatchRecord(
        id=str(doc["_id"]),
        at=float(doc["at"]),
        endpoint=doc["endpoint"],
        method=doc["method"],
        target=doc["target"],
        request_headers=tuple((str(k), str(v)) for k, v in doc["request_headers"]),
        request_body=_body_in(doc["request_body"]),
        primary=_response_from(doc["primary"]),
        shadow=_response_from(doc["shadow"]),
        verdict=doc["verdict"],
        differences=tuple(
            StoredDifference(
                pointer=d["pointer"],
                template=d["template"],
                kind=d["kind"],
                primary=load_value(d["primary"]),
                shadow=load_value(d["shadow"]),
                severity=d["severity"],
                label=d.get("label", ""),
            )
            for d in doc["differences"]
        ),
        fingerprint=doc["fingerprint"],
        ruleset_version=doc["ruleset_version"],
        reason=doc.get("reason", ""),
    )


def record_to_json(record: MismatchRecord) -> bytes:
    return orjson.dumps(record_to_doc(record, binary=False))


def record_from_json(data: bytes | str) -> MismatchRecord:
    doc: dict[str, Any] = orjson.loads(data)
    return record_from_doc(doc)


# --- per-batch tallies --------------------------------------------------------------------------

VERDICT_COLUMNS = ("matches", "mismatches", "shadow_errors", "skipped", "critical")
_COLUMN = {
    Verdict.MATCH: 0,
    Verdict.MISMATCH: 1,
    Verdict.SHADOW_ERROR: 2,
    Verdict.SKIPPED: 3,
}


@dataclass(slots=True)
class GroupDelta:
    """What one batch adds to one group."""

    fingerprint: str
    endpoint: str
    signature: tuple[tuple[str, str], ...]
    count: int = 0
    first_seen: float = float("inf")
    last_seen: float = 0.0
    members: list[Comparison] = field(default_factory=list)
    """The batch's comparisons in this group, in order (the engine decides which to store)."""


@dataclass(slots=True)
class Tally:
    """Everything a batch of not-yet-counted comparisons adds to the counters."""

    counters: dict[tuple[int, str], list[int]] = field(default_factory=dict)
    """(minute, endpoint) -> [matches, mismatches, shadow_errors, skipped, critical]."""
    latency: dict[tuple[int, str, str, int], int] = field(default_factory=dict)
    """(minute, endpoint, backend, bucket) -> count."""
    fields: dict[tuple[int, str, str, str], int] = field(default_factory=dict)
    """(minute, endpoint, template, kind) -> comparisons in which that field differed."""
    groups: dict[str, GroupDelta] = field(default_factory=dict)


def tally(comparisons: Iterable[Comparison]) -> Tally:
    """Sum a batch's contributions (call with comparisons not counted before)."""
    out = Tally()
    for comparison in comparisons:
        exchange = comparison.exchange
        at = exchange.request.received_at
        minute = minute_of(at)
        endpoint = exchange.endpoint
        row = out.counters.setdefault((minute, endpoint), [0, 0, 0, 0, 0])
        row[_COLUMN[comparison.verdict]] += 1
        if comparison.critical:
            row[4] += 1
        for backend, outcome in ((PRIMARY, exchange.primary), (SHADOW, exchange.shadow)):
            key = (minute, endpoint, backend, latency.bucket_of(elapsed_ms(outcome)))
            out.latency[key] = out.latency.get(key, 0) + 1
        if comparison.verdict not in RECORDED:
            continue
        signature = signature_of(comparison)
        for template, kind in signature:
            fkey = (minute, endpoint, template, kind)
            out.fields[fkey] = out.fields.get(fkey, 0) + 1
        fingerprint = group_key(comparison)
        group = out.groups.get(fingerprint)
        if group is None:
            group = out.groups[fingerprint] = GroupDelta(fingerprint, endpoint, signature)
        group.count += 1
        group.first_seen = min(group.first_seen, at)
        group.last_seen = max(group.last_seen, at)
        group.members.append(comparison)
    return out


def merge_examples(old: Sequence[str], new: Sequence[str]) -> list[str]:
    """Keep the first few example ids ever seen, without repeats."""
    merged = list(old)
    for item in new:
        if len(merged) >= EXAMPLES_PER_GROUP:
            break
        if item not in merged:
            merged.append(item)
    return merged


def summary_of(
    endpoint: str,
    matches: int,
    mismatches: int,
    shadow_errors: int,
    skipped: int,
    critical: int,
    buckets: dict[tuple[str, str], dict[int, int]],
) -> EndpointSummary:
    """An :class:`EndpointSummary` from summed counters and latency buckets."""
    primary = buckets.get((endpoint, PRIMARY), {})
    shadow = buckets.get((endpoint, SHADOW), {})
    return EndpointSummary(
        endpoint=endpoint,
        compared=matches + mismatches + shadow_errors,
        matches=matches,
        mismatches=mismatches,
        shadow_errors=shadow_errors,
        skipped=skipped,
        critical=critical,
        primary_latency_ms=(latency.percentile(primary, 0.5), latency.percentile(primary, 0.95)),
        shadow_latency_ms=(latency.percentile(shadow, 0.5), latency.percentile(shadow, 0.95)),
    )
