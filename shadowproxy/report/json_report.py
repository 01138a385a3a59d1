"""The JSON report: :func:`~shadowproxy.report.schema.report_json`, pretty-printed, UTF-8."""

from __future__ import annotations

import json

from shadowproxy.report.model import Report
from shadowproxy.report.schema import report_json


def render_json(report: Report) -> bytes:
    """The report as a JSON document (schema ``shadowproxy.report/1``, see docs/REPORTS.md)."""
    return (json.dumps(report_json(report), ensure_ascii=False, indent=2) + "\n").encode("utf-8")
