"""The JSON shapes of report and API objects, defined once (documented in docs/REPORTS.md).

The JSON report and the admin API serialise through these functions, so an endpoint's numbers look
the same in ``/api/v1/summary``, ``/api/v1/readiness`` and ``report --format json``.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from shadowproxy.report.body import STORED_DECODED_HEADER, BodyView, view_body
from shadowproxy.report.model import EndpointReport, FieldShare, Report, Totals
from shadowproxy.report.pretty import pretty_lines
from shadowproxy.report.readiness import Check, Criteria, Readiness
from shadowproxy.store.contract import (
    EndpointSummary,
    Group,
    MismatchRecord,
    StoredDifference,
    StoredResponse,
    TrendPoint,
)

SCHEMA = "shadowproxy.report/1"
"""Identifies the JSON report format; bumped on any incompatible change."""


def iso(instant: float | None) -> str | None:
    """Unix seconds → ``2026-11-26T10:42:31Z`` (``None`` stays ``None``)."""
    if instant is None:
        return None
    return datetime.fromtimestamp(instant, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def summary_json(summary: EndpointSummary) -> dict[str, Any]:
    """One endpoint's counts, rates and latency."""
    return {
        "endpoint": summary.endpoint,
        "compared": summary.compared,
        "matches": summary.matches,
        "mismatches": summary.mismatches,
        "shadow_errors": summary.shadow_errors,
        "skipped": summary.skipped,
        "critical": summary.critical,
        "mismatch_rate": summary.mismatch_rate,
        "shadow_error_rate": summary.shadow_error_rate,
        "latency_ms": {
            "primary": {"p50": summary.primary_latency_ms[0], "p95": summary.primary_latency_ms[1]},
            "shadow": {"p50": summary.shadow_latency_ms[0], "p95": summary.shadow_latency_ms[1]},
        },
    }


def totals_json(totals: Totals) -> dict[str, Any]:
    """Counts summed over endpoints, with overall rates."""
    return {
        "compared": totals.compared,
        "matches": totals.matches,
        "mismatches": totals.mismatches,
        "shadow_errors": totals.shadow_errors,
        "skipped": totals.skipped,
        "critical": totals.critical,
        "mismatch_rate": totals.mismatch_rate,
        "shadow_error_rate": totals.shadow_error_rate,
    }


def criteria_json(criteria: Criteria) -> dict[str, Any]:
    """The readiness thresholds, by name."""
    return asdict(criteria)


def check_json(check: Check) -> dict[str, Any]:
    """One applied criterion: name, verdict, actual value, limit and a sentence."""
    return {
        "name": check.name,
        "passed": check.passed,
        "actual": check.actual,
        "limit": check.limit,
        "detail": check.detail,
    }


def readiness_json(readiness: Readiness) -> dict[str, Any]:
    """One endpoint's verdict with every check."""
    return {
        "endpoint": readiness.endpoint,
        "passed": readiness.passed,
        "checks": [check_json(check) for check in readiness.checks],
    }


def field_json(field: FieldShare) -> dict[str, Any]:
    """A differing path template with its count and share of comparisons."""
    return {
        "template": field.template,
        "kind": field.kind,
        "count": field.count,
        "share": field.share,
    }


def trend_json(point: TrendPoint) -> dict[str, Any]:
    """One per-minute bucket of one endpoint."""
    return {
        "minute": point.minute,
        "endpoint": point.endpoint,
        "compared": point.compared,
        "mismatches": point.mismatches,
        "shadow_errors": point.shadow_errors,
    }


def group_json(group: Group) -> dict[str, Any]:
    """A group of identical mismatches with its triage state."""
    return {
        "fingerprint": group.fingerprint,
        "endpoint": group.endpoint,
        "signature": [{"template": template, "kind": kind} for template, kind in group.signature],
        "count": group.count,
        "first_seen": group.first_seen,
        "last_seen": group.last_seen,
        "example_ids": list(group.example_ids),
        "state": str(group.state),
        "note": group.note,
    }


def difference_json(difference: StoredDifference) -> dict[str, Any]:
    """One stored difference (values as JSON)."""
    return {
        "pointer": difference.pointer,
        "template": difference.template,
        "kind": difference.kind,
        "primary": difference.primary,
        "shadow": difference.shadow,
        "severity": difference.severity,
        "label": difference.label,
    }


def body_json(view: BodyView, *, with_lines: bool) -> dict[str, Any]:
    """A body for display: text (or base64), the encoding undone and, for JSON, printed lines."""
    shaped: dict[str, Any] = {
        "size": view.size,
        "encoding": view.encoding,
        "text": view.text,
        "base64": view.base64,
        "is_json": view.is_json,
        "cut": view.cut,
    }
    if with_lines:
        shaped["lines"] = (
            [
                {"depth": line.depth, "text": line.text, "pointer": line.pointer}
                for line in pretty_lines(view.json)
            ]
            if view.is_json
            else None
        )
    return shaped


def response_json(response: StoredResponse, *, with_lines: bool) -> dict[str, Any]:
    """A stored backend outcome: status, headers, decoded body; or the error kind."""
    return {
        "status": response.status,
        "error": response.error,
        "elapsed_ms": response.elapsed_ms,
        "truncated": response.truncated,
        # The store's own marker is not the backend's header; body.encoding carries its meaning.
        "headers": [
            [name, value]
            for name, value in response.headers
            if name.lower() != STORED_DECODED_HEADER
        ],
        "body": body_json(
            view_body(response.body, response.headers, truncated=response.truncated),
            with_lines=with_lines,
        ),
    }


def mismatch_json(record: MismatchRecord, *, full: bool) -> dict[str, Any]:
    """A stored mismatch; ``full`` adds headers, bodies and printed lines (the detail view)."""
    shaped: dict[str, Any] = {
        "id": record.id,
        "at": record.at,
        "endpoint": record.endpoint,
        "method": record.method,
        "target": record.target,
        "verdict": record.verdict,
        "reason": record.reason,
        "fingerprint": record.fingerprint,
        "ruleset_version": record.ruleset_version,
        "primary_status": record.primary.status,
        "shadow_status": record.shadow.status,
        "shadow_error": record.shadow.error,
        "differences": [difference_json(item) for item in record.differences],
    }
    if full:
        shaped["request"] = {
            "method": record.method,
            "target": record.target,
            "headers": [[name, value] for name, value in record.request_headers],
            "body": body_json(
                view_body(record.request_body, record.request_headers), with_lines=False
            ),
        }
        shaped["primary"] = response_json(record.primary, with_lines=True)
        shaped["shadow"] = response_json(record.shadow, with_lines=True)
    return shaped


def endpoint_report_json(section: EndpointReport) -> dict[str, Any]:
    """One endpoint's section of the JSON report: summary, readiness, fields, examples."""
    shaped = summary_json(section.summary)
    shaped["readiness"] = readiness_json(section.readiness)
    shaped["fields"] = [field_json(field) for field in section.fields]
    shaped["examples"] = [mismatch_json(record, full=False) for record in section.examples]
    shaped["groups"] = [group_json(group) for group in section.groups]
    return shaped


def report_json(report: Report) -> dict[str, Any]:
    """The whole report, in the documented ``shadowproxy.report/1`` shape."""
    return {
        "schema": SCHEMA,
        "generated_at": iso(report.generated_at),
        "window": {
            "since": report.window.since,
            "until": report.window.until,
            "since_iso": iso(report.window.since),
            "until_iso": iso(report.window.until),
            "endpoint": report.endpoint_filter,
        },
        "criteria": criteria_json(report.criteria),
        "passed": report.passed,
        "verdict": report.verdict,
        "totals": totals_json(report.totals),
        "endpoints": [endpoint_report_json(section) for section in report.endpoints],
    }
