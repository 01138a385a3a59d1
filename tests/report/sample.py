"""A sample report from contract objects, its traffic trying to inject markup and formulas."""

from __future__ import annotations

import gzip
import json

from shadowproxy.report.model import EndpointReport, Report, field_shares, totals_of
from shadowproxy.report.readiness import Criteria, assess
from shadowproxy.report.window import Window
from shadowproxy.store.contract import (
    EndpointSummary,
    FieldCount,
    Group,
    MismatchRecord,
    StoredDifference,
    StoredResponse,
    TriageState,
)

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
JS_URL = "javascript:alert(1)"
FORMULA = '=HYPERLINK("http://evil")'
NOW = 1_795_000_000.0


def _record() -> MismatchRecord:
    primary = {"id": 9174, "names": {"ru": "Ван-Пис", "en": SCRIPT}, "genres": ["Приключения"]}
    shadow = {"id": "9174", "names": {"ru": "Ван-Пис", "en": IMG}, "url": JS_URL}
    json_headers = (("content-type", "application/json"),)
    return MismatchRecord(
        id="ab12cd34",
        at=NOW - 60,
        endpoint=f"GET /v3/title/{{id}}{SCRIPT}",
        method="GET",
        target=f"/v3/title?id=9174&q={IMG}",
        request_headers=(("accept", "application/json"), ("x-note", SCRIPT)),
        request_body=b"",
        primary=StoredResponse(
            status=200,
            headers=(*json_headers, ("content-encoding", "gzip")),
            body=gzip.compress(json.dumps(primary, ensure_ascii=False).encode()),
            elapsed_ms=41.0,
        ),
        shadow=StoredResponse(
            status=200,
            headers=json_headers,
            body=json.dumps(shadow, ensure_ascii=False).encode(),
            elapsed_ms=55.0,
        ),
        verdict="mismatch",
        differences=(
            StoredDifference("/id", "/id", "type", 9174, "9174", "critical"),
            StoredDifference("/names/en", "/names/en", "value", SCRIPT, IMG, "normal"),
            StoredDifference("/genres", "/genres", "missing", ["Приключения"], None, "normal"),
            StoredDifference("/url", "/url", "extra", None, JS_URL, "normal"),
        ),
        fingerprint="f1f1f1",
        ruleset_version="r1",
    )


def build_report() -> Report:
    """Two endpoints: a failing one full of payloads, a passing one that is quiet."""
    criteria = Criteria(min_samples=100)
    bad = EndpointSummary(
        endpoint=f"GET /v3/title/{{id}}{SCRIPT}",
        compared=400,
        matches=380,
        mismatches=18,
        shadow_errors=2,
        skipped=5,
        critical=3,
        primary_latency_ms=(40.0, 90.0),
        shadow_latency_ms=(50.0, 140.0),
    )
    good = EndpointSummary(
        endpoint=FORMULA,
        compared=1000,
        matches=1000,
        mismatches=0,
        shadow_errors=0,
        skipped=0,
        primary_latency_ms=(20.0, 60.0),
        shadow_latency_ms=(18.0, 55.0),
    )
    bad_fields = [
        FieldCount(bad.endpoint, "/id", "type", 12),
        FieldCount(bad.endpoint, f"/names/{SCRIPT}", "value", 6),
        FieldCount(bad.endpoint, f"/{FORMULA}", "extra", 2),
    ]
    sections = (
        EndpointReport(
            summary=bad,
            readiness=assess(bad, criteria),
            fields=field_shares(bad_fields, bad.compared),
            examples=(_record(),),
            groups=(
                Group(
                    fingerprint="f1f1f1",
                    endpoint=bad.endpoint,
                    signature=(("/id", "type"), (f"/names/{SCRIPT}", "value")),
                    count=12,
                    first_seen=NOW - 3600,
                    last_seen=NOW - 60,
                    example_ids=("ab12cd34",),
                    state=TriageState.EXPECTED,
                    note=IMG,
                ),
            ),
        ),
        EndpointReport(summary=good, readiness=assess(good, criteria), fields=(), examples=()),
    )
    return Report(
        generated_at=NOW,
        window=Window(since=NOW - 86400, until=NOW),
        criteria=criteria,
        endpoints=sections,
        totals=totals_of([bad, good]),
    )
