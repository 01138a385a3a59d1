"""The Markdown report, sized for a pull-request comment (GitHub-flavoured tables).

Every value from traffic is escaped: Markdown punctuation gets a backslash and ``<``, ``>``, ``&``
become entities, since GitHub renders inline HTML.
"""

from __future__ import annotations

import re

from shadowproxy.report.model import Report
from shadowproxy.report.readiness import percent
from shadowproxy.report.schema import iso

_PUNCTUATION = re.compile(r"([\\`*_\[\]|~])")
_NEWLINES = re.compile(r"[\r\n]+")


def escape_markdown(text: str) -> str:
    """``text`` as inert Markdown: no emphasis, links, tables cells, code or HTML from it."""
    text = _NEWLINES.sub(" ", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _PUNCTUATION.sub(r"\\\1", text)


def render_markdown(report: Report) -> bytes:
    """The report as Markdown: verdict, a table of endpoints, then the failing checks and fields."""
    mark = "✅" if report.passed else "❌"
    since = iso(report.window.since) or "the beginning"
    until = iso(report.window.until) or "now"
    lines = [
        f"## {mark} shadowproxy readiness: {escape_markdown(report.verdict)}",
        "",
        f"Window: {since} → {until} · generated {iso(report.generated_at)} · "
        f"{report.totals.compared} comparisons, mismatch rate "
        f"{percent(report.totals.mismatch_rate)}, shadow errors "
        f"{percent(report.totals.shadow_error_rate)}",
        "",
        "| | Endpoint | Compared | Mismatch rate | Shadow errors | Critical "
        "| p95 primary / shadow (ms) |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for section in report.endpoints:
        summary = section.summary
        lines.append(
            f"| {'✅' if section.readiness.passed else '❌'} "
            f"| {escape_markdown(summary.endpoint)} "
            f"| {summary.compared} "
            f"| {percent(summary.mismatch_rate)} "
            f"| {percent(summary.shadow_error_rate)} "
            f"| {summary.critical} "
            f"| {summary.primary_latency_ms[1]:.0f} / {summary.shadow_latency_ms[1]:.0f} |"
        )
    failing = [section for section in report.endpoints if not section.readiness.passed]
    if failing:
        lines += ["", "### Why not ready", ""]
        for section in failing:
            details = "; ".join(check.detail for check in section.readiness.failures)
            lines.append(
                f"- **{escape_markdown(section.summary.endpoint)}**: {escape_markdown(details)}"
            )
    with_fields = [section for section in report.endpoints if section.fields]
    if with_fields:
        lines += ["", "<details><summary>Differing fields</summary>", ""]
        for section in with_fields:
            lines += [
                f"**{escape_markdown(section.summary.endpoint)}**",
                "",
                "| Field | Kind | Count | Share |",
                "|---|---|--:|--:|",
            ]
            lines += [
                f"| {escape_markdown(field.template or '(whole body)')} "
                f"| {escape_markdown(field.kind)} | {field.count} | {percent(field.share)} |"
                for field in section.fields[:10]
            ]
            lines.append("")
        lines.append("</details>")
    criteria = report.criteria
    lines += [
        "",
        f"<sub>Criteria: mismatch rate < {percent(criteria.max_mismatch_rate)}, shadow errors < "
        f"{percent(criteria.max_shadow_error_rate)}, critical ≤ {criteria.max_critical}, shadow "
        f"p95 < {criteria.max_latency_ratio:g}x primary and < {criteria.max_shadow_p95_ms:g} ms, "
        f"≥ {criteria.min_samples} samples.</sub>",
        "",
    ]
    return "\n".join(lines).encode("utf-8")
