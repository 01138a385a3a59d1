"""collect_report reads a real store once: summaries, gate, fields and one example per group."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shadowproxy.report.model import collect_report
from shadowproxy.report.readiness import Criteria
from shadowproxy.report.window import Window
from shadowproxy.store import open_store
from shadowproxy.store.contract import Store
from tests.report.traffic import TITLE, Traffic, fill


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'shadow.db'}")
    await opened.aopen()
    yield opened
    await opened.aclose()


async def test_report_from_a_store(store: Store) -> None:
    """Endpoints sorted by name, totals summed, verdicts applied, examples one per group."""
    traffic: Traffic = await fill(store)
    steps: list[tuple[int, int]] = []
    report = await collect_report(
        store,
        window=Window(since=traffic.now - 86400),
        criteria=Criteria(),
        progress=lambda done, total: steps.append((done, total)),
    )
    assert [TITLE, "schedule", "titles.list", "titles.search"] == [
        section.summary.endpoint for section in report.endpoints
    ]
    assert (521, 14, 2, False) == (
        report.totals.compared,
        report.totals.mismatches,
        report.totals.shadow_errors,
        report.passed,
    )
    title = report.endpoints[0]
    assert ["title-xss", "title-err-1", "title-mm-8"] == [r.id for r in title.examples]
    assert [("/announce", 9), ("/id", 9)] == [(f.template, f.count) for f in title.fields[:2]]
    assert [(traffic.critical_fingerprint, 9, "open")] == [
        (g.fingerprint, g.count, str(g.state)) for g in title.groups[:1]
    ]
    assert 3 == len(title.groups)
    assert [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)] == steps


async def test_one_endpoint_and_an_empty_window(store: Store) -> None:
    """The endpoint filter narrows the report; a window with nothing in it fails the gate."""
    traffic = await fill(store)
    only = await collect_report(
        store,
        window=Window(since=traffic.now - 86400),
        criteria=Criteria(),
        endpoint="titles.search",
    )
    assert (["titles.search"], True) == (
        [s.summary.endpoint for s in only.endpoints],
        only.passed,
    )
    empty = await collect_report(
        store, window=Window(until=traffic.now - 86400), criteria=Criteria()
    )
    assert ((), False, "FAIL: no comparisons in this window") == (
        empty.endpoints,
        empty.passed,
        empty.verdict,
    )
