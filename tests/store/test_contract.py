"""The store contract, run against SQLite and a real MongoDB-wire server alike."""

from __future__ import annotations

import time

import pytest

from shadowproxy.model import BackendError, Difference, DiffKind, ErrorKind, Severity, Verdict
from shadowproxy.store.contract import Store, StoreError, TriageState
from shadowproxy.store.cursor import CursorError
from tests.factories import make_comparison, make_response
from tests.store.conftest import StoreFactory

NOW = time.time() // 60 * 60 + 1.0
"""The start of a minute (plus 1 s), so tests never straddle a minute boundary."""


async def test_counts_every_verdict_per_endpoint(store: Store) -> None:
    """Every comparison is counted under its endpoint and verdict; only records are kept for
    mismatches and shadow errors."""
    batch = (
        [make_comparison(verdict=Verdict.MATCH, received_at=NOW) for _ in range(5)]
        + [make_comparison(verdict=Verdict.MISMATCH, received_at=NOW) for _ in range(3)]
        + [make_comparison(verdict=Verdict.SHADOW_ERROR, received_at=NOW) for _ in range(2)]
        + [make_comparison(verdict=Verdict.SKIPPED, received_at=NOW)]
        + [make_comparison(endpoint="GET /api/v1/schedule", verdict=Verdict.MATCH, received_at=NOW)]
    )
    await store.write(batch)

    summary = {s.endpoint: s for s in await store.summary()}

    title = summary["GET /api/v1/title"]
    assert (10, 5, 3, 2, 1) == (
        title.compared,
        title.matches,
        title.mismatches,
        title.shadow_errors,
        title.skipped,
    )
    assert 0.3 == pytest.approx(title.mismatch_rate)
    assert 1 == summary["GET /api/v1/schedule"].compared
    page = await store.mismatches(limit=100)
    assert 5 == len(page.items)
    assert {"mismatch", "shadow_error"} == {r.verdict for r in page.items}


async def test_writing_a_batch_twice_changes_nothing(store: Store) -> None:
    """Writes are idempotent by exchange id: a replayed batch neither counts nor stores twice."""
    batch = [
        make_comparison(verdict=v, received_at=NOW)
        for v in (Verdict.MATCH, Verdict.MISMATCH, Verdict.SHADOW_ERROR)
    ] * 2

    await store.write(batch)
    await store.write(batch)
    await store.write(batch[1:2])

    [summary] = await store.summary()
    assert (3, 1, 1) == (summary.compared, summary.mismatches, summary.shadow_errors)
    assert 2 == len((await store.mismatches()).items)
    groups = (await store.groups()).items
    assert [1, 1] == [g.count for g in groups]
    assert [1, 1] == [f.count for f in await store.fields()]


async def test_a_record_round_trips_with_bodies_decoded_and_capped(
    make_store: StoreFactory,
) -> None:
    """The stored record holds request, both responses (decoded, capped), differences with their
    JSON types, verdict, fingerprint and ruleset version."""
    store = make_store(body_max=100)
    await store.aopen()
    comparison = make_comparison(
        received_at=NOW,
        differences=(
            Difference("/rating", "/rating", DiffKind.VALUE, 24, 24.0, Severity.CRITICAL),
            Difference(
                "/list/3/names/ru",
                "/list/*/names/ru",
                DiffKind.MISSING,
                {"a.b": "$x"},
                None,
                label="/list/[id=9174]/names/ru",
            ),
            Difference("/id", "/id", DiffKind.TYPE, 2**70, "9174"),
        ),
    )
    await store.write([comparison])

    record = await store.mismatch(comparison.exchange.id)

    assert record is not None
    assert comparison.exchange.request.target == record.target
    assert ("GET", "GET /api/v1/title") == (record.method, record.endpoint)
    assert b'{"id":9174,"code":"kimi-no-na-wa"' == record.primary.body[:33]
    assert 100 == len(record.primary.body)
    assert record.primary.truncated
    assert ("x-shadowproxy-decoded", "gzip") in record.primary.headers
    assert 200 == record.primary.status
    assert 31.0 == record.primary.elapsed_ms
    assert [(24, 24.0), ({"a.b": "$x"}, None), (2**70, "9174")] == [
        (d.primary, d.shadow) for d in record.differences
    ]
    assert isinstance(record.differences[0].shadow, float)
    assert "/list/[id=9174]/names/ru" == record.differences[1].label
    assert "critical" == record.differences[0].severity
    assert (comparison.fingerprint, "r1a2b3c") == (record.fingerprint, record.ruleset_version)
    assert record.at == NOW


async def test_shadow_error_records_the_error_kind(store: Store) -> None:
    """A shadow that did not answer is stored with its error kind and no status."""
    comparison = make_comparison(
        verdict=Verdict.SHADOW_ERROR,
        received_at=NOW,
        shadow=BackendError(ErrorKind.CONNECT, 0.002, "ConnectionRefusedError"),
        reason="connect",
    )
    await store.write([comparison])

    record = await store.mismatch(comparison.exchange.id)

    assert record is not None
    assert (None, "connect", "connect") == (
        record.shadow.status,
        record.shadow.error,
        record.reason,
    )
    assert await store.mismatch("no-such-id") is None


async def test_mismatches_page_newest_first_with_filters(store: Store) -> None:
    """Cursor pagination walks every record exactly once, newest first; filters narrow it."""
    batch = [
        make_comparison(
            id=f"x{i:03d}",
            received_at=NOW + i // 2,
            endpoint="GET /a" if i % 3 else "GET /b",
            verdict=Verdict.MISMATCH if i % 4 else Verdict.SHADOW_ERROR,
        )
        for i in range(25)
    ]
    await store.write(batch)

    seen: list[str] = []
    cursor = None
    while True:
        page = await store.mismatches(limit=4, cursor=cursor)
        seen += [r.id for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    expected = [
        c.exchange.id
        for c in sorted(
            batch, key=lambda c: (c.exchange.request.received_at, c.exchange.id), reverse=True
        )
    ]
    assert expected == seen
    only_b = await store.mismatches(endpoint="GET /b", verdict="shadow_error", limit=50)
    assert {f"x{i:03d}" for i in range(25) if i % 3 == 0 and i % 4 == 0} == {
        r.id for r in only_b.items
    }
    window = await store.mismatches(since=NOW + 3, until=NOW + 5, limit=50)
    assert {f"x{i:03d}" for i in range(6, 12)} == {r.id for r in window.items}
    by_group = await store.mismatches(fingerprint=batch[1].fingerprint, limit=50)
    assert {r.fingerprint for r in by_group.items} == {batch[1].fingerprint}


async def test_a_foreign_cursor_is_refused(store: Store) -> None:
    """A cursor from another listing or a mangled one raises a clear error."""
    await store.write([make_comparison(received_at=NOW + i) for i in range(3)])
    page = await store.mismatches(limit=1)
    assert page.next_cursor is not None

    with pytest.raises(CursorError):
        await store.groups(cursor=page.next_cursor)
    with pytest.raises(StoreError):
        await store.mismatches(cursor="!!not a cursor")


async def test_groups_gather_identical_mismatches(store: Store) -> None:
    """Same fingerprint, one group: count, first/last seen, examples; most frequent first."""
    rating = (Difference("/rating", "/rating", DiffKind.VALUE, 1, 2),)
    genres = (Difference("/genres/0", "/genres/*", DiffKind.VALUE, "a", "b"),)
    batch = [make_comparison(differences=rating, received_at=NOW + i) for i in range(7)] + [
        make_comparison(differences=genres, received_at=NOW + i) for i in range(3)
    ]
    await store.write(batch[:4])
    await store.write(batch[4:])

    page = await store.groups()

    assert [7, 3] == [g.count for g in page.items]
    top = page.items[0]
    assert (("/rating", "value"),) == top.signature
    assert (NOW, NOW + 6) == (top.first_seen, top.last_seen)
    assert [c.exchange.id for c in batch[:5]] == list(top.example_ids)
    assert TriageState.OPEN == top.state
    first = await store.groups(limit=1)
    second = await store.groups(limit=1, cursor=first.next_cursor)
    assert ([7], [3], None) == (
        [g.count for g in first.items],
        [g.count for g in second.items],
        second.next_cursor,
    )


async def test_triage_sets_state_and_note(store: Store) -> None:
    """Triage changes a group's state and note, and filters groups by state."""
    comparison = make_comparison(received_at=NOW)
    await store.write([comparison])

    group = await store.set_triage(comparison.fingerprint, TriageState.EXPECTED, "rounding, ok")

    assert group is not None
    assert (TriageState.EXPECTED, "rounding, ok") == (group.state, group.note)
    assert [comparison.fingerprint] == [
        g.fingerprint for g in (await store.groups(state=TriageState.EXPECTED)).items
    ]
    assert () == (await store.groups(state=TriageState.OPEN)).items
    assert await store.set_triage("nope", TriageState.ACKNOWLEDGED) is None


async def test_a_hot_group_is_counted_always_and_stored_within_its_quota(
    make_store: StoreFactory,
) -> None:
    """Past group_store_per_hour, records of a group are counted but not stored in full."""
    store = make_store(group_store_per_hour=3)
    await store.aopen()
    hour = NOW // 3600 * 3600
    await store.write([make_comparison(received_at=hour + i) for i in range(5)])
    await store.write([make_comparison(received_at=hour + 10 + i) for i in range(5)])
    await store.write([make_comparison(received_at=hour + 3600 + i) for i in range(5)])

    [group] = (await store.groups()).items
    stored = await store.mismatches(limit=100)

    assert 15 == group.count
    assert 6 == len(stored.items)
    assert [True] * len(group.example_ids) == [
        await store.mismatch(i) is not None for i in group.example_ids
    ]


async def test_fields_count_comparisons_per_template_and_kind(store: Store) -> None:
    """Per endpoint, each (template, kind) counts the comparisons in which it differed."""
    diffs = (
        Difference("/list/0/id", "/list/*/id", DiffKind.TYPE, 1, "1"),
        Difference("/list/1/id", "/list/*/id", DiffKind.TYPE, 2, "2"),
        Difference("/total", "/total", DiffKind.VALUE, 3, 4),
    )
    await store.write([make_comparison(differences=diffs, received_at=NOW) for _ in range(4)])
    await store.write([make_comparison(differences=diffs[2:], endpoint="GET /b", received_at=NOW)])

    fields = await store.fields()

    assert [
        ("GET /api/v1/title", "/list/*/id", "type", 4),
        ("GET /api/v1/title", "/total", "value", 4),
        ("GET /b", "/total", "value", 1),
    ] == [(f.endpoint, f.template, f.kind, f.count) for f in fields]
    assert 1 == len(await store.fields(endpoint="GET /b"))


async def test_trend_and_windows_follow_minutes(store: Store) -> None:
    """Trend points are per minute and endpoint; since/until select whole minutes."""
    await store.write(
        [
            make_comparison(verdict=Verdict.MATCH, received_at=NOW + 60 * m)
            for m in range(3)
            for _ in range(m + 1)
        ]
    )
    await store.write([make_comparison(verdict=Verdict.MISMATCH, received_at=NOW + 60)])

    trend = await store.trend()
    windowed = await store.summary(since=NOW + 60, until=NOW + 60)

    assert [(NOW - 1 + 60 * m, c, mm) for m, c, mm in ((0, 1, 0), (1, 3, 1), (2, 3, 0))] == [
        (t.minute, t.compared, t.mismatches) for t in trend
    ]
    assert [3] == [s.compared for s in windowed]
    assert [] == await store.trend(endpoint="GET /nothing")


async def test_latency_percentiles_per_backend(store: Store) -> None:
    """p50/p95 of primary and shadow come back per endpoint, within the bucket resolution."""
    batch = [
        make_comparison(
            verdict=Verdict.MATCH,
            received_at=NOW,
            primary=make_response(elapsed=0.010 * (1 + i % 10)),
            shadow=make_response(elapsed=0.100),
        )
        for i in range(200)
    ]
    await store.write(batch)

    [summary] = await store.summary()

    p50, p95 = summary.primary_latency_ms
    assert 50 * 0.85 <= p50 <= 50 * 1.15
    assert 95 * 0.85 <= p95 <= 100 * 1.15
    assert 100 * 0.8 <= summary.shadow_latency_ms[0] <= 100 * 1.2


async def test_critical_comparisons_are_counted(store: Store) -> None:
    """A comparison with a critical difference counts once under critical."""
    critical = (
        Difference("/id", "/id", DiffKind.VALUE, 1, 2, Severity.CRITICAL),
        Difference("/names", "/names", DiffKind.MISSING, "x", None, Severity.CRITICAL),
    )
    await store.write(
        [make_comparison(differences=critical, received_at=NOW), make_comparison(received_at=NOW)]
    )

    [summary] = await store.summary()

    assert 1 == summary.critical


async def test_open_is_idempotent_and_health_reports(make_store: StoreFactory) -> None:
    """aopen twice, or a second store on the same data, keeps data; health says ok."""
    store = make_store()
    assert not (await store.health()).ok
    await store.aopen()
    await store.write([make_comparison(received_at=NOW)])
    await store.aopen()

    health = await store.health()

    assert (True, store.engine) == (health.ok, health.engine)
    assert 1 == len((await store.mismatches()).items)


async def test_ten_thousand_identical_mismatches_make_one_bounded_group(
    make_store: StoreFactory,
) -> None:
    """10,000 identical mismatches: one group counting 10,000, at most the hourly quota stored."""
    store = make_store(group_store_per_hour=50)
    await store.aopen()
    hour = NOW // 3600 * 3600
    batch = [make_comparison(received_at=hour + i * 0.3) for i in range(10_000)]
    for start in range(0, len(batch), 500):
        await store.write(batch[start : start + 500])

    page = await store.groups()
    stored = await store.mismatches(limit=1000)

    assert [10_000] == [g.count for g in page.items]
    assert 50 == len(stored.items)
    [summary] = await store.summary()
    assert 10_000 == summary.mismatches
