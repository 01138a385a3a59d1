"""The report: everything a go/no-go decision needs, read from a store once, rendered many ways.

:func:`collect_report` asks the store (through :class:`~shadowproxy.store.contract.Store` only)
for the per-endpoint summaries, the differing fields and a few example mismatches, and applies the
readiness gate. The renderers (one module per format) only format a :class:`Report`; they never
talk to a store, so every format carries the same numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from shadowproxy.report.readiness import Criteria, Readiness, assess
from shadowproxy.report.window import Window
from shadowproxy.store.contract import (
    EndpointSummary,
    FieldCount,
    Group,
    MismatchRecord,
    Store,
)

EXAMPLE_SCAN = 10
"""Records read per example wanted, to find examples of different groups."""

ProgressCallback = Callable[[int, int], None]
"""Called with (steps done, steps in total) as the report is collected."""


@dataclass(frozen=True, slots=True)
class FieldShare:
    """A differing path template on one endpoint, with its share of that endpoint's comparisons."""

    template: str
    kind: str
    count: int
    share: float
    """``count / compared``; 0 when nothing was compared."""


@dataclass(frozen=True, slots=True)
class EndpointReport:
    """One endpoint's section of the report."""

    summary: EndpointSummary
    readiness: Readiness
    fields: tuple[FieldShare, ...]
    """Most frequent first."""
    examples: tuple[MismatchRecord, ...]
    """Recent mismatches or shadow errors, one per group, newest first."""
    groups: tuple[Group, ...] = ()
    """The most frequent groups of identical mismatches, with their triage state."""


@dataclass(frozen=True, slots=True)
class Totals:
    """Counts over all endpoints of the report (latency percentiles do not add up, so none)."""

    compared: int = 0
    matches: int = 0
    mismatches: int = 0
    shadow_errors: int = 0
    skipped: int = 0
    critical: int = 0

    @property
    def mismatch_rate(self) -> float:
        """Mismatches per comparison over all endpoints (0 when nothing was compared)."""
        return self.mismatches / self.compared if self.compared else 0.0

    @property
    def shadow_error_rate(self) -> float:
        """Shadow errors per comparison over all endpoints."""
        return self.shadow_errors / self.compared if self.compared else 0.0


@dataclass(frozen=True, slots=True)
class Report:
    """A readiness report over one time window."""

    generated_at: float
    window: Window
    criteria: Criteria
    endpoints: tuple[EndpointReport, ...]
    totals: Totals
    endpoint_filter: str | None = None

    @property
    def passed(self) -> bool:
        """The gate: at least one endpoint, and every endpoint ready."""
        return bool(self.endpoints) and all(item.readiness.passed for item in self.endpoints)

    @property
    def verdict(self) -> str:
        """One line saying why the gate passed or failed."""
        if not self.endpoints:
            return "FAIL: no comparisons in this window"
        failing = [item.summary.endpoint for item in self.endpoints if not item.readiness.passed]
        if not failing:
            return f"PASS: all {len(self.endpoints)} endpoint(s) ready"
        return f"FAIL: {len(failing)} of {len(self.endpoints)} endpoint(s) not ready"


def totals_of(summaries: list[EndpointSummary] | tuple[EndpointSummary, ...]) -> Totals:
    """Sum the counters of several endpoint summaries."""
    return Totals(
        compared=sum(item.compared for item in summaries),
        matches=sum(item.matches for item in summaries),
        mismatches=sum(item.mismatches for item in summaries),
        shadow_errors=sum(item.shadow_errors for item in summaries),
        skipped=sum(item.skipped for item in summaries),
        critical=sum(item.critical for item in summaries),
    )


def field_shares(fields: list[FieldCount], compared: int) -> tuple[FieldShare, ...]:
    """Fields with their share of comparisons, most frequent first (ties by template)."""
    ordered = sorted(fields, key=lambda item: (-item.count, item.template, item.kind))
    return tuple(
        FieldShare(
            template=item.template,
            kind=item.kind,
            count=item.count,
            share=item.count / compared if compared else 0.0,
        )
        for item in ordered
    )


def distinct_examples(
    records: tuple[MismatchRecord, ...], count: int
) -> tuple[MismatchRecord, ...]:
    """The newest record of each group (fingerprint), newest first, at most ``count``."""
    seen: set[str] = set()
    chosen: list[MismatchRecord] = []
    for record in records:
        if record.fingerprint in seen:
            continue
        seen.add(record.fingerprint)
        chosen.append(record)
        if len(chosen) == count:
            break
    return tuple(chosen)


async def collect_report(
    store: Store,
    *,
    window: Window,
    criteria: Criteria,
    endpoint: str | None = None,
    examples: int = 3,
    fields_max: int = 50,
    groups_max: int = 10,
    progress: ProgressCallback | None = None,
    now: float | None = None,
) -> Report:
    """Read everything a report needs from ``store``; :class:`StoreError` propagates."""
    summaries = await store.summary(since=window.since, until=window.until, endpoint=endpoint)
    summaries = sorted(summaries, key=lambda item: item.endpoint)
    total_steps = len(summaries) + 1
    if progress:
        progress(1, total_steps)
    sections: list[EndpointReport] = []
    for done, summary in enumerate(summaries, start=2):
        fields = await store.fields(
            endpoint=summary.endpoint, since=window.since, until=window.until
        )
        chosen: tuple[MismatchRecord, ...] = ()
        if examples > 0:
            page = await store.mismatches(
                endpoint=summary.endpoint,
                since=window.since,
                until=window.until,
                limit=examples * EXAMPLE_SCAN,
            )
            chosen = distinct_examples(page.items, examples)
        groups = await store.groups(endpoint=summary.endpoint, limit=groups_max)
        sections.append(
            EndpointReport(
                summary=summary,
                readiness=assess(summary, criteria),
                fields=field_shares(fields, summary.compared)[:fields_max],
                examples=chosen,
                groups=groups.items[:groups_max],
            )
        )
        if progress:
            progress(done, total_steps)
    return Report(
        generated_at=time.time() if now is None else now,
        window=window,
        criteria=criteria,
        endpoints=tuple(sections),
        totals=totals_of(summaries),
        endpoint_filter=endpoint,
    )
