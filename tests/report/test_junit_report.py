"""The JUnit report: one test case per endpoint, failed when the endpoint is not ready."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from shadowproxy.report.junit_report import render_junit
from shadowproxy.report.model import Report, Totals
from shadowproxy.report.readiness import Criteria
from shadowproxy.report.window import Window
from tests.report.sample import SCRIPT


def _parse(document: bytes) -> ET.Element:
    return ET.fromstring(document)  # noqa: S314 - our own output, parsed to check it


def test_cases_and_failures(report: Report) -> None:
    """Counts on the suite, a <failure> naming the failed checks on the failing endpoint only."""
    root = _parse(render_junit(report))
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    assert [
        (f"GET /v3/title/{{id}}{SCRIPT}", True),
        ('=HYPERLINK("http://evil")', False),
    ] == [(case.get("name"), case.find("failure") is not None) for case in cases]
    failure = cases[0].find("failure")
    assert failure is not None
    assert (failure.get("message") or "").startswith("mismatch rate 4.50 % ≥ 0.10 %")


def test_empty_window_fails() -> None:
    """No comparisons at all is a failing gate, not an empty green suite."""
    empty = Report(0.0, Window(), Criteria(), (), Totals())
    root = _parse(render_junit(empty))
    assert (root.get("tests"), root.get("failures")) == ("1", "1")


def test_control_characters_do_not_break_the_xml(report: Report) -> None:
    """Characters XML 1.0 forbids are replaced, so the document still parses."""
    from dataclasses import replace

    section = report.endpoints[0]
    broken = replace(
        report,
        endpoints=(replace(section, summary=replace(section.summary, endpoint="GET /\x00\x1b")),),
    )
    root = _parse(render_junit(broken))
    case = root.find("testsuite/testcase")
    assert case is not None
    assert case.get("name") == "GET /??"
