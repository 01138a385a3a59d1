"""The JUnit XML report: one test case per endpoint, failing when the endpoint is not ready.

CI systems (GitLab, Jenkins, GitHub actions' test reporters) read this format, so a pipeline can
gate a cut-over on it. Text from traffic goes through ElementTree (escaped) after removing the
characters XML 1.0 cannot carry at all.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from shadowproxy.report.model import Report
from shadowproxy.report.readiness import percent
from shadowproxy.report.schema import iso

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
SUITE = "shadowproxy.readiness"


def xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 forbids (they become ``?``)."""
    return _NOT_XML.sub("?", text)


def render_junit(report: Report) -> bytes:
    """The report as a JUnit XML document (``<testsuites>`` root)."""
    failures = sum(1 for section in report.endpoints if not section.readiness.passed)
    tests = len(report.endpoints)
    root = ET.Element(
        "testsuites", name="shadowproxy readiness", tests=str(tests), failures=str(failures)
    )
    suite = ET.SubElement(
        root,
        "testsuite",
        name=SUITE,
        tests=str(tests),
        failures=str(failures),
        errors="0",
        skipped="0",
        timestamp=iso(report.generated_at) or "",
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("since", iso(report.window.since) or ""),
        ("until", iso(report.window.until) or ""),
        ("verdict", report.verdict),
    ):
        ET.SubElement(properties, "property", name=name, value=xml_text(value))
    if not report.endpoints:
        case = ET.SubElement(suite, "testcase", classname=SUITE, name="(no endpoints)")
        ET.SubElement(case, "failure", message="no comparisons in this window", type="readiness")
        suite.set("tests", "1")
        suite.set("failures", "1")
        root.set("tests", "1")
        root.set("failures", "1")
    for section in report.endpoints:
        summary = section.summary
        case = ET.SubElement(
            suite, "testcase", classname=SUITE, name=xml_text(summary.endpoint), time="0"
        )
        failed = section.readiness.failures
        if failed:
            failure = ET.SubElement(
                case,
                "failure",
                message=xml_text("; ".join(check.detail for check in failed)),
                type="readiness",
            )
            failure.text = xml_text(
                "\n".join(f"{check.name}: {check.detail}" for check in section.readiness.checks)
            )
        out = ET.SubElement(case, "system-out")
        field_lines = [
            f"  {field.template or '(whole body)'} [{field.kind}] x{field.count}"
            for field in section.fields[:10]
        ]
        out.text = xml_text(
            "\n".join(
                [
                    f"compared={summary.compared} mismatches={summary.mismatches} "
                    f"shadow_errors={summary.shadow_errors} critical={summary.critical}",
                    f"mismatch_rate={percent(summary.mismatch_rate)} "
                    f"shadow_error_rate={percent(summary.shadow_error_rate)}",
                    f"p95 primary={summary.primary_latency_ms[1]:.1f}ms "
                    f"shadow={summary.shadow_latency_ms[1]:.1f}ms",
                    *(["differing fields:", *field_lines] if field_lines else []),
                ]
            )
        )
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"
