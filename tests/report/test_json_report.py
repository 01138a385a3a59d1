"""The JSON report follows the documented shadowproxy.report/1 shape."""

from __future__ import annotations

import json

from shadowproxy.report.json_report import render_json
from shadowproxy.report.model import Report


def test_shape_and_numbers(report: Report) -> None:
    """Top-level keys, per-endpoint counts, rates, readiness and fields are all there."""
    document = json.loads(render_json(report))
    first = document["endpoints"][0]
    assert {
        "schema": document["schema"],
        "passed": document["passed"],
        "verdict": document["verdict"],
        "window": [
            document["window"]["since"],
            document["window"]["until"],
            document["window"]["until_iso"],
        ],
        "totals": {
            key: document["totals"][key]
            for key in ("compared", "mismatches", "shadow_errors", "critical")
        },
        "first": (
            first["compared"],
            first["mismatch_rate"],
            first["shadow_error_rate"],
            first["latency_ms"]["shadow"],
        ),
        "failed": [c["name"] for c in first["readiness"]["checks"] if not c["passed"]],
        "fields": [[f["template"], f["kind"], f["count"], f["share"]] for f in first["fields"][:1]],
        "groups": [(g["fingerprint"], g["count"], g["state"]) for g in first["groups"]],
        "example": (
            first["examples"][0]["id"],
            first["examples"][0]["primary_status"],
            [d["pointer"] for d in first["examples"][0]["differences"]],
        ),
    } == {
        "schema": "shadowproxy.report/1",
        "passed": False,
        "verdict": "FAIL: 1 of 2 endpoint(s) not ready",
        "window": [1_794_913_600.0, 1_795_000_000.0, "2026-11-18T11:06:40Z"],
        "totals": {"compared": 1400, "mismatches": 18, "shadow_errors": 2, "critical": 3},
        "first": (400, 0.045, 0.005, {"p50": 50.0, "p95": 140.0}),
        "failed": ["mismatch_rate", "critical", "shadow_error_rate", "latency_ratio"],
        "fields": [["/id", "type", 12, 0.03]],
        "example": ("ab12cd34", 200, ["/id", "/names/en", "/genres", "/url"]),
        "groups": [("f1f1f1", 12, "expected")],
    }
