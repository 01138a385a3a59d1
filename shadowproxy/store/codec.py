"""A :class:`~shadowproxy.model.Comparison` as one line of JSON, and back, for the disk spool.

Lossless for everything a comparison holds: bodies travel as base64, difference values as JSON
text (see :func:`shadowproxy.store.document.dump_value`).
"""

from __future__ import annotations

import orjson

from shadowproxy.model import (
    Comparison,
    Difference,
    DiffKind,
    Severity,
    Verdict,
)
from shadowproxy.store.document import dump_value, load_value
from shadowproxy.wire import exchange_document, exchange_from_document


class CodecError(ValueError):
    """The bytes are not an encoded comparison."""


def encode_comparison(comparison: Comparison) -> bytes:
    """One line of JSON (no newline inside)."""
    return orjson.dumps(
        {
            **exchange_document(comparison.exchange),
            "verdict": comparison.verdict.value,
            "differences": [
                [
                    d.pointer,
                    d.template,
                    d.kind.value,
                    dump_value(d.primary),
                    dump_value(d.shadow),
                    d.severity.value,
                    d.label,
                ]
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
        return Comparison(
            exchange=exchange_from_document(doc),
            verdict=Verdict(doc["verdict"]),
            differences=tuple(
                Difference(
                    pointer=p,
                    template=t,
                    kind=DiffKind(k),
                    primary=load_value(pv),
                    shadow=load_value(sv),
                    severity=Severity(sev),
                    label=label,
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
