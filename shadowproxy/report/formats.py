"""The export formats by name: what ``--format`` and ``/api/v1/report?format=`` accept."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shadowproxy.report.csv_report import render_csv
from shadowproxy.report.html_report import render_html
from shadowproxy.report.json_report import render_json
from shadowproxy.report.junit_report import render_junit
from shadowproxy.report.markdown_report import render_markdown
from shadowproxy.report.model import Report


@dataclass(frozen=True, slots=True)
class Format:
    """One export format."""

    name: str
    media_type: str
    extension: str
    render: Callable[[Report], bytes]


FORMATS: dict[str, Format] = {
    item.name: item
    for item in (
        Format("html", "text/html; charset=utf-8", "html", render_html),
        Format("json", "application/json", "json", render_json),
        Format("csv", "text/csv; charset=utf-8", "csv", render_csv),
        Format("md", "text/markdown; charset=utf-8", "md", render_markdown),
        Format("junit", "application/xml", "xml", render_junit),
    )
}
"""Every export format, keyed by the name users type."""
