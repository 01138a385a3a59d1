"""The CSV report: one row per endpoint, safe to open in a spreadsheet.

Endpoint names and field paths come from traffic. A cell starting with ``=``, ``+``, ``-``, ``@``,
tab or carriage return would be run as a formula by Excel or LibreOffice (CSV injection), so such
text cells get a leading ``'``, which spreadsheets show as text.
"""

from __future__ import annotations

import csv
import io

from shadowproxy.report.model import Report

COLUMNS = (
    "endpoint",
    "compared",
    "matches",
    "mismatches",
    "shadow_errors",
    "skipped",
    "critical",
    "mismatch_rate",
    "shadow_error_rate",
    "primary_p50_ms",
    "primary_p95_ms",
    "shadow_p50_ms",
    "shadow_p95_ms",
    "ready",
    "failed_checks",
    "top_fields",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str) -> str:
    """``text``, defused when a spreadsheet would read it as a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def render_csv(report: Report) -> bytes:
    """The report as CSV (RFC 4180, CRLF line ends, header row first)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for section in report.endpoints:
        summary = section.summary
        top = "; ".join(
            f"{field.template} ({field.kind}) x{field.count}" for field in section.fields[:5]
        )
        writer.writerow(
            [
                safe_cell(summary.endpoint),
                summary.compared,
                summary.matches,
                summary.mismatches,
                summary.shadow_errors,
                summary.skipped,
                summary.critical,
                f"{summary.mismatch_rate:.6f}",
                f"{summary.shadow_error_rate:.6f}",
                f"{summary.primary_latency_ms[0]:.1f}",
                f"{summary.primary_latency_ms[1]:.1f}",
                f"{summary.shadow_latency_ms[0]:.1f}",
                f"{summary.shadow_latency_ms[1]:.1f}",
                "yes" if section.readiness.passed else "no",
                safe_cell("; ".join(check.name for check in section.readiness.failures)),
                safe_cell(top),
            ]
        )
    return out.getvalue().encode("utf-8")
