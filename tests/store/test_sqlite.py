"""SQLite specifics: the file, WAL, schema migrations from every earlier version, retention."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowproxy.model import Verdict
from shadowproxy.store import open_store
from shadowproxy.store.contract import StoreError
from shadowproxy.store.sqlite import MIGRATIONS, SCHEMA_V1, SCHEMA_VERSION, SQLiteStore
from tests.factories import make_comparison

NOW = time.time() // 60 * 60 + 1.0


def make_v1_database(path: Path) -> None:
    """A database exactly as the first release left it, with one record, group and counter."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(SCHEMA_V1)
    conn.execute("PRAGMA user_version = 1")
    doc = orjson.dumps(
        {
            "_id": "old1",
            "at": NOW,
            "endpoint": "GET /old",
            "method": "GET",
            "target": "/old",
            "request_headers": [],
            "request_body": "",
            "primary": {
                "status": 200,
                "headers": [],
                "body": "e30=",
                "elapsed_ms": 3.0,
                "truncated": False,
                "error": None,
            },
            "shadow": {
                "status": 200,
                "headers": [],
                "body": "W10=",
                "elapsed_ms": 4.0,
                "truncated": False,
                "error": None,
            },
            "verdict": "mismatch",
            "differences": [
                {
                    "pointer": "",
                    "template": "",
                    "kind": "type",
                    "primary": "{}",
                    "shadow": "[]",
                    "severity": "normal",
                }
            ],
            "fingerprint": "f1",
            "ruleset_version": "v1",
        }
    )
    conn.execute(
        "INSERT INTO records VALUES ('old1', ?, 'GET /old', 'mismatch', 'f1', ?)", (NOW, doc)
    )
    conn.execute("INSERT INTO counters VALUES (?, 'GET /old', 5, 1, 0, 0)", (NOW // 60 * 60,))
    conn.execute(
        "INSERT INTO groups VALUES ('f1', 'GET /old', '[[\"\",\"type\"]]', 1, ?, ?,"
        " '[\"old1\"]', 'acknowledged', 'known')",
        (NOW, NOW),
    )
    conn.execute("INSERT INTO seen VALUES ('old1', ?)", (NOW,))
    conn.close()


async def test_a_version_1_database_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    """Opening a v1 file migrates it to the current version; old data reads back, new writes
    work, and a replay of an old exchange id is still ignored."""
    path = tmp_path / "old.db"
    make_v1_database(path)
    store = SQLiteStore(path)

    await store.aopen()
    await store.write([make_comparison(received_at=NOW), make_comparison(id="old1")])

    assert SCHEMA_VERSION == sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    old = await store.mismatch("old1")
    assert old is not None
    assert (b"{}", "GET /old", ({}, [])) == (
        old.primary.body,
        old.endpoint,
        (old.differences[0].primary, old.differences[0].shadow),
    )
    summaries = {s.endpoint: s for s in await store.summary()}
    assert (6, 1) == (summaries["GET /old"].compared, summaries["GET /old"].mismatches)
    assert 1 == summaries["GET /api/v1/title"].mismatches
    groups = {g.fingerprint: g for g in (await store.groups()).items}
    assert ("acknowledged", "known") == (groups["f1"].state, groups["f1"].note)
    await store.aclose()


async def test_every_version_migrates_to_the_current_schema(tmp_path: Path) -> None:
    """From each earlier version, migration yields the same tables and columns as a fresh file."""

    def shape(path: Path) -> list[tuple[str, list[str]]]:
        conn = sqlite3.connect(path)
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        out = [(t, sorted(r[1] for r in conn.execute(f"PRAGMA table_info({t})"))) for t in tables]
        conn.close()
        return out

    fresh = SQLiteStore(tmp_path / "fresh.db")
    await fresh.aopen()
    await fresh.aclose()
    for version in range(1, SCHEMA_VERSION):
        path = tmp_path / f"v{version}.db"
        conn = sqlite3.connect(path, isolation_level=None)
        for step in range(1, version + 1):
            conn.executescript(MIGRATIONS[step])
        conn.execute(f"PRAGMA user_version = {version}")
        conn.close()
        store = SQLiteStore(path)
        await store.aopen()
        await store.aclose()
        assert shape(tmp_path / "fresh.db") == shape(path), f"from version {version}"


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    """A file written by a newer shadowproxy is not touched."""
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()

    with pytest.raises(StoreError, match="newer"):
        await SQLiteStore(path).aopen()


async def test_query_indexes_exist(tmp_path: Path) -> None:
    """The indexes the API's queries use are created at start-up."""
    store = SQLiteStore(tmp_path / "i.db")
    await store.aopen()
    await store.aclose()

    names = {
        r[0]
        for r in sqlite3.connect(tmp_path / "i.db").execute(
            "SELECT name FROM sqlite_master WHERE type = 'index'"
        )
    }

    assert {
        "records_at",
        "records_endpoint_at",
        "records_fingerprint_at",
        "records_verdict_at",
        "groups_count",
        "groups_endpoint_count",
    } <= names


async def test_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    """Readers never wait for the writer: the journal is a write-ahead log."""
    store = open_store(f"sqlite:///{tmp_path}/w.db")
    await store.aopen()
    await store.write([make_comparison()])

    mode = sqlite3.connect(tmp_path / "w.db").execute("PRAGMA journal_mode").fetchone()[0]

    assert "wal" == mode
    await store.aclose()


async def test_retention_by_age_removes_old_records_and_counters(tmp_path: Path) -> None:
    """Records, counters and groups older than retention_days are pruned; newer ones stay."""
    store = SQLiteStore(tmp_path / "r.db", retention_days=1, clock=lambda: 0.0)
    await store.aopen()
    old, new = NOW - 3 * 86400, NOW
    await store.write(
        [make_comparison(received_at=old, fingerprint="old") for _ in range(3)]
        + [make_comparison(received_at=new, fingerprint="new")]
        + [make_comparison(verdict=Verdict.MATCH, received_at=old)]
    )

    deleted = await store.prune(now=NOW)

    assert 3 == deleted
    assert [new] == [r.at for r in (await store.mismatches()).items]
    assert ["new"] == [g.fingerprint for g in (await store.groups()).items]
    assert [(1, 0)] == [(s.mismatches, s.matches) for s in await store.summary()]
    await store.aclose()


async def test_writes_prune_by_themselves(tmp_path: Path) -> None:
    """Retention runs after writes (at most once a minute) without being asked."""
    clock = [NOW]
    store = SQLiteStore(tmp_path / "r.db", retention_days=1, clock=lambda: clock[0])
    await store.aopen()
    await store.write([make_comparison(received_at=NOW - 3 * 86400)])
    await store.write([make_comparison(received_at=NOW)])
    assert 1 == len((await store.mismatches()).items)
    await store.aclose()


async def test_retention_by_size_drops_the_oldest_records(tmp_path: Path) -> None:
    """Past max_bytes, the oldest records go until the file's used pages fit again."""
    store = SQLiteStore(tmp_path / "s.db", max_bytes=400_000, body_max=20_000, clock=lambda: 0.0)
    await store.aopen()
    big = {"list": [{"id": i, "text": "x" * 50} for i in range(300)]}
    from tests.factories import make_response

    batch = [
        make_comparison(
            id=f"r{i:03d}", received_at=NOW + i, fingerprint=f"g{i}", primary=make_response(big)
        )
        for i in range(60)
    ]
    await store.write(batch)
    before = (await store.health()).extra["bytes"]

    deleted = await store.prune(now=NOW)

    after = (await store.health()).extra["bytes"]
    kept = [r.id for r in (await store.mismatches(limit=100)).items]
    assert before > 400_000 >= after
    assert 60 == deleted + len(kept)
    assert [f"r{i:03d}" for i in range(59, 59 - len(kept), -1)] == kept
    [summary] = await store.summary()
    assert 60 == summary.mismatches
    await store.aclose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///rel/x.db", "rel/x.db"),
        ("sqlite:////abs/x.db", "/abs/x.db"),
        ("sqlite://", ":memory:"),
    ],
)
def test_sqlite_urls_follow_the_sqlalchemy_convention(url: str, expected: str) -> None:
    """Three slashes: relative to the working directory; four: absolute."""
    store = open_store(url)

    assert isinstance(store, SQLiteStore)
    assert expected == store.path


POOL = [
    make_comparison(
        id=f"p{i:02d}",
        received_at=NOW + i,
        verdict=(Verdict.MATCH, Verdict.MISMATCH, Verdict.SHADOW_ERROR)[i % 3],
        fingerprint=f"g{i % 4}",
    )
    for i in range(24)
]


@settings(max_examples=15, deadline=None)
@given(st.lists(st.lists(st.integers(0, len(POOL) - 1), max_size=12), max_size=6))
def test_any_replay_pattern_counts_each_exchange_once(batches: list[list[int]]) -> None:
    """Whatever mix of batches, repeats and replays is written, counts, groups and records
    reflect each distinct exchange exactly once."""
    distinct = {i for batch in batches for i in batch}

    async def run(path: Path) -> tuple[int, int, int, int]:
        store = SQLiteStore(path, group_store_per_hour=1000)
        await store.aopen()
        for batch in batches:
            await store.write([POOL[i] for i in batch])
        summaries = await store.summary()
        groups = (await store.groups(limit=100)).items
        records = (await store.mismatches(limit=100)).items
        await store.aclose()
        return (
            sum(s.compared for s in summaries),
            sum(s.mismatches for s in summaries),
            sum(g.count for g in groups),
            len(records),
        )

    with tempfile.TemporaryDirectory() as tmp:
        compared, mismatches, grouped, stored = asyncio.run(run(Path(tmp) / "h.db"))

    recorded = sum(1 for i in distinct if POOL[i].verdict is not Verdict.MATCH)
    assert (
        len(distinct),
        sum(1 for i in distinct if POOL[i].verdict is Verdict.MISMATCH),
        recorded,
        recorded,
    ) == (compared, mismatches, grouped, stored)


async def test_exchange_ids_are_remembered_for_a_window_and_batches_for_the_retention(
    tmp_path: Path,
) -> None:
    """Per-exchange memory stays at minutes of traffic; a batch retried after a long outage is
    still recognised by its key and counts nothing twice."""
    clock = [NOW]
    store = SQLiteStore(tmp_path / "w.db", seen_window=3600, clock=lambda: clock[0])
    await store.aopen()
    batch = [make_comparison(verdict=Verdict.MATCH, received_at=NOW) for _ in range(50)]
    await store.write(batch)

    clock[0] = NOW + 3 * 3600
    await store.prune()
    await store.write(batch)

    seen = sqlite3.connect(tmp_path / "w.db").execute("SELECT count(*) FROM seen").fetchone()[0]
    assert 0 == seen
    assert [50] == [s.compared for s in await store.summary()]
    await store.aclose()
