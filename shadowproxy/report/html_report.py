"""The HTML report: one self-contained file (inline CSS, no script, no external asset).

Every string that came from traffic goes through :func:`html.escape`; on top of that the file
carries a Content-Security-Policy that forbids scripts, so a missed escape still could not run.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from shadowproxy.report.body import view_body
from shadowproxy.report.model import EndpointReport, Report
from shadowproxy.report.pretty import covers, pretty_lines
from shadowproxy.report.readiness import percent
from shadowproxy.report.schema import iso
from shadowproxy.store.contract import Group, MismatchRecord, StoredResponse

EXAMPLE_LINES_MAX = 2000
"""Lines printed per response in an example before folding."""
CONTEXT = 3
"""Unchanged lines kept around each difference in an example."""
FOLD_BELOW = 30
"""Responses this short are shown whole."""
HEAD_LINES = 12
"""Lines shown of a longer response without a difference in it."""

_CSS = """
:root{--fg:#1d2433;--muted:#5b6478;--line:#dfe3ea;--bg:#f6f7f9;--card:#fff;--ok:#137a3e;
--ok-bg:#e3f4ea;--bad:#b42318;--bad-bg:#fde8e6;--warn:#9a6700;--mark:#ffe7a3;--mark-x:#fbd2cd}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
background:var(--bg)}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px}
h3{font-size:15px;margin:20px 0 6px}
.muted{color:var(--muted)}
.banner{padding:14px 18px;border-radius:8px;font-weight:600;font-size:16px;margin:16px 0}
.banner.pass{background:var(--ok-bg);color:var(--ok)}.banner.fail{background:var(--bad-bg);color:var(--bad)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px;margin:12px 0}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px}
.card b{display:block;font-size:22px;font-variant-numeric:tabular-nums}
table{border-collapse:collapse;width:100%;background:var(--card);border:1px solid var(--line)}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600;font-size:13px}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.pill.pass{background:var(--ok-bg);color:var(--ok)}.pill.fail{background:var(--bad-bg);color:var(--bad)}
.pill.open{background:#fef3c7;color:var(--warn)}.pill.acknowledged{background:#e0ecff;color:#1d4ed8}
.pill.expected{background:#ede9fe;color:#6d28d9}
.bad{color:var(--bad)}.check-fail{color:var(--bad)}.check-ok{color:var(--muted)}
code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
code{background:#eef1f5;padding:0 4px;border-radius:3px;word-break:break-all}
section.endpoint{background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:2px 18px 18px;margin:18px 0}
section.endpoint h2{margin:14px 0 10px}
#readiness td:first-child{min-width:180px}
.side p.none{margin:0;padding:10px;color:var(--bad)}
.sides{align-items:start}
.example{margin:14px 0;border-top:1px dashed var(--line);padding-top:10px}
.sides{display:grid;grid-template-columns:1fr 1fr;gap:10px}
.side{border:1px solid var(--line);border-radius:6px;overflow:auto;max-height:420px}
.side h4{margin:0;padding:6px 10px;background:#eef1f5;font-size:12px;position:sticky;top:0}
pre{margin:0;padding:6px 10px;white-space:pre-wrap;word-break:break-all}
pre span{display:block}
pre span.d{background:var(--mark)}
pre span.gap{color:var(--muted);background:#f3f4f6;font-style:italic;margin:2px 0}
.difflist td:first-child{width:40%}
footer{margin:40px 0 10px;font-size:12px;color:var(--muted)}
"""

_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'"
)


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def render_html(report: Report) -> bytes:
    """The report as one HTML page that opens offline."""
    verdict_class = "pass" if report.passed else "fail"
    since = iso(report.window.since) or "the beginning"
    until = iso(report.window.until) or "now"
    totals = report.totals
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>shadowproxy readiness report — {_e(until)}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        "<h1>shadowproxy readiness report</h1>",
        f'<div class="muted">Window {_e(since)} → {_e(until)}'
        + (f" · endpoint {_e(report.endpoint_filter)}" if report.endpoint_filter else "")
        + f" · generated {_e(iso(report.generated_at))}</div>",
        f'<div class="banner {verdict_class}" id="verdict">{_e(report.verdict)}</div>',
        '<div class="cards">',
        _card("Compared", str(totals.compared)),
        _card("Mismatch rate", percent(totals.mismatch_rate), bad=totals.mismatches > 0),
        _card("Shadow errors", percent(totals.shadow_error_rate), bad=totals.shadow_errors > 0),
        _card("Critical", str(totals.critical), bad=totals.critical > 0),
        _card("Endpoints", str(len(report.endpoints))),
        "</div>",
        "<h2>Readiness</h2>",
        _readiness_table(report),
        _criteria(report),
    ]
    parts += [_endpoint_section(index, section) for index, section in enumerate(report.endpoints)]
    parts.append("<footer>Produced by shadowproxy. Values from traffic are shown as text.</footer>")
    parts.append("</main></body></html>\n")
    return "\n".join(parts).encode("utf-8")


def _card(label: str, value: str, *, bad: bool = False) -> str:
    css = ' class="bad"' if bad else ""
    return f'<div class="card"><span class="muted">{_e(label)}</span><b{css}>{_e(value)}</b></div>'


def _readiness_table(report: Report) -> str:
    if not report.endpoints:
        return "<p>No comparisons in this window.</p>"
    rows = [
        '<table id="readiness"><thead><tr><th>Endpoint</th><th>Ready</th><th>Compared</th>'
        "<th>Mismatch rate</th><th>Shadow error rate</th><th>Critical</th>"
        "<th>p50 primary / shadow</th><th>p95 primary / shadow</th><th>Why not</th></tr>"
        "</thead><tbody>"
    ]
    for index, section in enumerate(report.endpoints):
        summary = section.summary
        primary, shadow = summary.primary_latency_ms, summary.shadow_latency_ms
        rows.append(
            "<tr>"
            f'<td><a href="#ep-{index}"><code>{_e(summary.endpoint)}</code></a></td>'
            f"<td>{_pill(section.readiness.passed)}</td>"
            f'<td class="n">{summary.compared}</td>'
            f'<td class="n">{percent(summary.mismatch_rate)}</td>'
            f'<td class="n">{percent(summary.shadow_error_rate)}</td>'
            f'<td class="n">{summary.critical}</td>'
            f'<td class="n">{primary[0]:.0f} / {shadow[0]:.0f} ms</td>'
            f'<td class="n">{primary[1]:.0f} / {shadow[1]:.0f} ms</td>'
            f"<td>{'<br>'.join(_e(check.detail) for check in section.readiness.failures)}</td>"
            "</tr>"
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def _pill(passed: bool) -> str:
    state = "pass" if passed else "fail"
    return f'<span class="pill {state}">{state.upper()}</span>'


def _criteria(report: Report) -> str:
    criteria = report.criteria
    return (
        '<p class="muted">Criteria: mismatch rate &lt; '
        f"{percent(criteria.max_mismatch_rate)}; shadow error rate &lt; "
        f"{percent(criteria.max_shadow_error_rate)}; at most {criteria.max_critical} critical; "
        f"shadow p95 &lt; {criteria.max_latency_ratio:g}x primary p95 and &lt; "
        f"{criteria.max_shadow_p95_ms:g} ms; at least {criteria.min_samples} samples.</p>"
    )


def _endpoint_section(index: int, section: EndpointReport) -> str:
    summary = section.summary
    parts = [
        f'<section class="endpoint" id="ep-{index}">',
        f"<h2><code>{_e(summary.endpoint)}</code> {_pill(section.readiness.passed)}</h2>",
        '<table class="checks"><tbody>',
    ]
    for check in section.readiness.checks:
        css = "check-ok" if check.passed else "check-fail"
        parts.append(
            f'<tr><td class="{css}">{"✓" if check.passed else "✗"} {_e(check.name)}</td>'
            f"<td>{_e(check.detail)}</td></tr>"
        )
    parts.append("</tbody></table>")
    if section.fields:
        parts.append(
            '<h3>Differing fields</h3><table class="fields"><thead><tr><th>Field</th>'
            "<th>Kind</th>"
            "<th>Count</th><th>Share of comparisons</th></tr></thead><tbody>"
        )
        parts += [
            f"<tr><td><code>{_e(field.template or '(whole body)')}</code></td>"
            f"<td>{_e(field.kind)}</td>"
            f'<td class="n">{field.count}</td><td class="n">{percent(field.share)}</td></tr>'
            for field in section.fields
        ]
        parts.append("</tbody></table>")
    if section.groups:
        parts.append(
            '<h3>Groups</h3><table class="groups"><thead><tr><th>Differences</th>'
            "<th>Count</th><th>Triage</th><th>Note</th></tr></thead><tbody>"
        )
        parts += [_group_row(group) for group in section.groups]
        parts.append("</tbody></table>")
    if section.examples:
        parts.append("<h3>Examples</h3>")
        parts += [_example(record) for record in section.examples]
    parts.append("</section>")
    return "\n".join(parts)


def _group_row(group: Group) -> str:
    signature = " ".join(
        f"<code>{_e(template or '(whole body)')} · {_e(kind)}</code>"
        for template, kind in group.signature
    )
    return (
        f"<tr><td>{signature or 'shadow errors (no response to compare)'}</td>"
        f'<td class="n">{group.count}</td>'
        f'<td><span class="pill {_e(group.state)}">{_e(group.state)}</span></td>'
        f"<td>{_e(group.note)}</td></tr>"
    )


def _example(record: MismatchRecord) -> str:
    rows = []
    for item in record.differences[:20]:
        primary, shadow = _values(item.kind, item.primary, item.shadow)
        critical = " · critical" if item.severity == "critical" else ""
        rows.append(
            f"<tr><td><code>{_e(item.label or item.pointer or '(whole body)')}</code></td>"
            f"<td>{_e(item.kind)}{critical}</td>"
            f"<td><code>{_e(primary)}</code></td><td><code>{_e(shadow)}</code></td></tr>"
        )
    differences = "".join(rows)
    # Status and header differences have pointers too (/status, /headers/...), not into bodies.
    in_body = [d for d in record.differences if d.kind not in {"status", "header"}]
    pointers_primary = [d.pointer for d in in_body if d.kind != "extra"]
    pointers_shadow = [d.pointer for d in in_body if d.kind != "missing"]
    return (
        '<div class="example">'
        f"<div><b>{_e(record.method)}</b> <code>{_e(record.target)}</code> "
        f'<span class="muted">· {_e(record.verdict)}'
        + (f" ({_e(record.reason)})" if record.reason else "")
        + f" · {_e(iso(record.at))} · id {_e(record.id)}</span></div>"
        + (
            '<table class="difflist"><thead><tr><th>Where</th><th>Kind</th><th>Primary</th>'
            f"<th>Shadow</th></tr></thead><tbody>{differences}</tbody></table>"
            if differences
            else ""
        )
        + '<div class="sides">'
        + _side("Primary", record.primary, pointers_primary)
        + _side("Shadow", record.shadow, pointers_shadow)
        + "</div></div>"
    )


def _side(title: str, response: StoredResponse, pointers: list[str]) -> str:
    if response.error:
        head = f"{title} · error: {response.error}"
        message = f"No response: the {title.lower()} failed ({response.error})."
        return f'<div class="side"><h4>{_e(head)}</h4><p class="none">{_e(message)}</p></div>'
    head = f"{title} · {response.status} · {response.elapsed_ms:.0f} ms"
    view = view_body(response.body, response.headers, truncated=response.truncated)
    if view.is_json:
        lines = pretty_lines(view.json, limit=EXAMPLE_LINES_MAX)
        marked = [any(covers(p, line.pointer) for p in pointers) for line in lines]
        body = "".join(
            f'<span class="gap">⋯ {-index} unchanged line(s)</span>'
            if index < 0
            else f"<span{' class=d' if marked[index] else ''}>"
            f"{'  ' * lines[index].depth}{_e(lines[index].text)}</span>"
            for index in _folded(marked)
        )
    elif view.text is not None:
        body = _e(view.text[:20000])
    else:
        body = _e(f"({view.size} bytes of binary data)")
    return f'<div class="side"><h4>{_e(head)}</h4><pre>{body}</pre></div>'


def _folded(marked: list[bool]) -> list[int]:
    """Indices of the lines to show: the marked ones with some context. A negative entry ``-n``
    stands for ``n`` lines left out."""
    if len(marked) <= FOLD_BELOW:
        return list(range(len(marked)))
    keep = [False] * len(marked)
    for index, hit in enumerate(marked):
        if hit:
            for near in range(max(0, index - CONTEXT), min(len(marked), index + CONTEXT + 1)):
                keep[near] = True
    if not any(keep):
        keep[:HEAD_LINES] = [True] * HEAD_LINES
    shown: list[int] = []
    skipped = 0
    for index, wanted in enumerate(keep):
        if wanted:
            if skipped:
                shown.append(-skipped)
                skipped = 0
            shown.append(index)
        else:
            skipped += 1
    if skipped:
        shown.append(-skipped)
    return shown


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "…"


def _values(kind: str, primary: Any, shadow: Any) -> tuple[str, str]:
    """How the two sides of a difference read: JSON, so ``9174`` and ``"9174"`` differ."""
    return (
        "(absent)" if kind == "extra" else _short(primary),
        "(absent)" if kind == "missing" else _short(shadow),
    )
