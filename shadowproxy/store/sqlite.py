"""The embedded store: one SQLite file in WAL mode, written from one dedicated thread.

Every call runs on a single-thread executor that owns the connection, so the event loop never
blocks on disk and the connection is never shared between threads. A batch is one transaction:
its key (:func:`~shadowproxy.store.document.batch_key`) goes into ``batches`` and its exchange ids
into ``seen`` with ``INSERT OR IGNORE``; a known batch is skipped whole, and otherwise only the
comparisons whose id was new are counted, grouped and stored. A batch replayed after an outage
therefore changes nothing. Exchange ids are remembered for
:data:`~shadowproxy.store.document.SEEN_WINDOW` after they were written, batch keys for the
retention.

Schema versions live in ``PRAGMA user_version``; :data:`MIGRATIONS` holds one step per version.
Version 1 was the first release (records, counters, groups); version 2 added latency buckets,
per-field counts, critical counts, the per-group hourly storage quota and record sizes; version 3
added batch keys (``seen.at`` became the write time).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from shadowproxy.model import Comparison
from shadowproxy.store import document
from shadowproxy.store.contract import (
    EndpointSummary,
    FieldCount,
    Group,
    MismatchRecord,
    Page,
    StoreError,
    StoreHealth,
    TrendPoint,
    TriageState,
)
from shadowproxy.store.cursor import decode_cursor, encode_cursor

R = TypeVar("R")

SCHEMA_V1 = """
CREATE TABLE records (
    id TEXT PRIMARY KEY,
    at REAL NOT NULL,
    endpoint TEXT NOT NULL,
    verdict TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    doc BLOB NOT NULL
);
CREATE TABLE counters (
    minute INTEGER NOT NULL,
    endpoint TEXT NOT NULL,
    matches INTEGER NOT NULL DEFAULT 0,
    mismatches INTEGER NOT NULL DEFAULT 0,
    shadow_errors INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, endpoint)
) WITHOUT ROWID;
CREATE TABLE groups (
    fingerprint TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL,
    signature TEXT NOT NULL,
    count INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    example_ids TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'open',
    note TEXT NOT NULL DEFAULT ''
);
CREATE TABLE seen (id TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
"""
"""The first release's schema, kept verbatim: migrations start from it and tests build it."""

_V1_TO_V2 = """
ALTER TABLE counters ADD COLUMN critical INTEGER NOT NULL DEFAULT 0;
ALTER TABLE groups ADD COLUMN hour INTEGER NOT NULL DEFAULT 0;
ALTER TABLE groups ADD COLUMN hour_stored INTEGER NOT NULL DEFAULT 0;
ALTER TABLE records ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
CREATE TABLE latency (
    minute INTEGER NOT NULL,
    endpoint TEXT NOT NULL,
    backend TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (minute, endpoint, backend, bucket)
) WITHOUT ROWID;
CREATE TABLE fields (
    minute INTEGER NOT NULL,
    endpoint TEXT NOT NULL,
    template TEXT NOT NULL,
    kind TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (minute, endpoint, template, kind)
) WITHOUT ROWID;
UPDATE records SET size = length(doc);
"""

_V2_TO_V3 = """
CREATE TABLE batches (key TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID;
"""

MIGRATIONS: dict[int, str] = {1: SCHEMA_V1, 2: _V1_TO_V2, 3: _V2_TO_V3}
"""Step to version ``n`` from version ``n - 1`` (version 0 is an empty file)."""

SCHEMA_VERSION = max(MIGRATIONS)

_INDEXES = """
CREATE INDEX IF NOT EXISTS records_at ON records (at, id);
CREATE INDEX IF NOT EXISTS records_endpoint_at ON records (endpoint, at, id);
CREATE INDEX IF NOT EXISTS records_fingerprint_at ON records (fingerprint, at, id);
CREATE INDEX IF NOT EXISTS records_verdict_at ON records (verdict, at, id);
CREATE INDEX IF NOT EXISTS groups_count ON groups (count DESC, fingerprint);
CREATE INDEX IF NOT EXISTS groups_endpoint_count ON groups (endpoint, count DESC, fingerprint);
CREATE INDEX IF NOT EXISTS groups_last_seen ON groups (last_seen);
CREATE INDEX IF NOT EXISTS seen_at ON seen (at);
CREATE INDEX IF NOT EXISTS batches_at ON batches (at);
"""

PRUNE_INTERVAL = 60.0
"""Seconds between retention passes run after a write."""

_PRUNE_CHUNK = 500


def sqlite_path(url: str) -> str:
    """The file path in a ``sqlite:`` URL (``:memory:`` for ``sqlite://``)."""
    rest = url.removeprefix("sqlite://")
    if rest in {"", "/:memory:"}:
        return ":memory:"
    return rest.removeprefix("/")


class SQLiteStore:
    """The embedded engine (see the module docstring)."""

    engine = "sqlite"

    def __init__(
        self,
        path: str | Path,
        *,
        body_max: int = 65536,
        group_store_per_hour: int = 50,
        retention_days: float = 14.0,
        max_bytes: int = 1 << 30,
        seen_window: float = document.SEEN_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = str(path)
        self._body_max = body_max
        self._quota = group_store_per_hour
        self._retention = retention_days * 86400.0
        self._max_bytes = max_bytes
        self._seen_window = seen_window
        self._clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        # Queries get their own connection and thread: in WAL mode they read a consistent
        # snapshot while a batch or a retention pass is being written.
        self._reader: ThreadPoolExecutor | None = None
        self._reader_conn: sqlite3.Connection | None = None
        self._last_prune = 0.0

    # --- plumbing ---------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., R], *args: Any) -> R:
        if self._executor is None:
            raise StoreError(f"sqlite store {self.path} is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"sqlite {self.path}: {exc}") from exc

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"sqlite store {self.path} is not open")
        return self._conn

    async def _read(self, fn: Callable[..., R], *args: Any) -> R:
        if self._reader is None:
            return await self._run(fn, *args)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._reader, fn, *args)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"sqlite {self.path}: {exc}") from exc

    def _rdb(self) -> sqlite3.Connection:
        return self._reader_conn if self._reader_conn is not None else self._db()

    async def aopen(self) -> None:
        """Open the file (creating it), migrate to :data:`SCHEMA_VERSION`, create indexes."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        try:
            await self._run(self._open_sync)
        except BaseException:
            self._executor.shutdown(wait=True)
            self._executor = None
            raise

    def _open_sync(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                # Must precede the first table, or SQLite ignores it.
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            migrate(conn)
            conn.executescript(_INDEXES)
            if self.path != ":memory:":
                reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                reader.execute("PRAGMA busy_timeout = 5000")
                reader.execute("PRAGMA query_only = ON")
                self._reader_conn = reader
                self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-reader")
        except BaseException:
            conn.close()
            if self._reader_conn is not None:
                self._reader_conn.close()
                self._reader_conn = None
            if self._reader is not None:
                self._reader.shutdown(wait=False)
                self._reader = None
            raise
        self._conn = conn

    async def aclose(self) -> None:
        if self._executor is None:
            return
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.shutdown(wait=True)
        try:
            await self._run(self._close_sync)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _close_sync(self) -> None:
        if self._reader_conn is not None:
            self._reader_conn.close()
            self._reader_conn = None
        if self._conn is not None:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._conn.close()
                self._conn = None

    # --- writes -----------------------------------------------------------------------------

    async def write(self, batch: Sequence[Comparison]) -> None:
        """Count, group and store a batch in one transaction; idempotent by exchange id."""
        if batch:
            await self._run(self._write_sync, list(batch))

    def _write_sync(self, batch: list[Comparison]) -> None:
        conn = self._db()
        now = self._clock()
        conn.execute("BEGIN IMMEDIATE")
        try:
            known = not conn.execute(
                "INSERT OR IGNORE INTO batches (key, at) VALUES (?, ?)",
                (document.batch_key(batch), now),
            ).rowcount
            fresh = (
                []
                if known
                else [
                    c
                    for c in batch
                    if conn.execute(
                        "INSERT OR IGNORE INTO seen (id, at) VALUES (?, ?)", (c.exchange.id, now)
                    ).rowcount
                    == 1
                ]
            )
            self._apply(conn, document.tally(fresh))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if now - self._last_prune >= PRUNE_INTERVAL:
            self._last_prune = now
            self._prune_sync(now)

    def _apply(self, conn: sqlite3.Connection, tally: document.Tally) -> None:
        conn.executemany(
            "INSERT INTO counters (minute, endpoint, matches, mismatches, shadow_errors, skipped,"
            " critical) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (minute, endpoint) DO UPDATE SET"
            " matches = matches + excluded.matches, mismatches = mismatches + excluded.mismatches,"
            " shadow_errors = shadow_errors + excluded.shadow_errors,"
            " skipped = skipped + excluded.skipped, critical = critical + excluded.critical",
            [(minute, endpoint, *row) for (minute, endpoint), row in tally.counters.items()],
        )
        conn.executemany(
            "INSERT INTO latency (minute, endpoint, backend, bucket, n) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (minute, endpoint, backend, bucket) DO UPDATE SET n = n + excluded.n",
            [(*key, n) for key, n in tally.latency.items()],
        )
        conn.executemany(
            "INSERT INTO fields (minute, endpoint, template, kind, n) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (minute, endpoint, template, kind) DO UPDATE SET n = n + excluded.n",
            [(*key, n) for key, n in tally.fields.items()],
        )
        for delta in tally.groups.values():
            self._apply_group(conn, delta)

    def _apply_group(self, conn: sqlite3.Connection, delta: document.GroupDelta) -> None:
        row = conn.execute(
            "SELECT count, first_seen, last_seen, example_ids, hour, hour_stored FROM groups"
            " WHERE fingerprint = ?",
            (delta.fingerprint,),
        ).fetchone()
        if row is None:
            count, first, last, examples, hour, stored = 0, delta.first_seen, 0.0, [], 0, 0
        else:
            count, first, last, raw_examples, hour, stored = row
            examples = orjson.loads(raw_examples)
        kept: list[str] = []
        for comparison in delta.members:
            at_hour = document.hour_of(comparison.exchange.request.received_at)
            if at_hour != hour:
                hour, stored = at_hour, 0
            if stored >= self._quota:
                continue
            stored += 1
            record = document.to_record(comparison, self._body_max)
            doc = document.record_to_json(record)
            inserted = conn.execute(
                "INSERT OR IGNORE INTO records (id, at, endpoint, verdict, fingerprint, doc, size)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.at,
                    record.endpoint,
                    record.verdict,
                    record.fingerprint,
                    doc,
                    len(doc),
                ),
            ).rowcount
            if inserted:
                kept.append(record.id)
        conn.execute(
            "INSERT INTO groups (fingerprint, endpoint, signature, count, first_seen, last_seen,"
            " example_ids, hour, hour_stored) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (fingerprint) DO UPDATE SET count = excluded.count,"
            " first_seen = excluded.first_seen, last_seen = excluded.last_seen,"
            " example_ids = excluded.example_ids, hour = excluded.hour,"
            " hour_stored = excluded.hour_stored",
            (
                delta.fingerprint,
                delta.endpoint,
                orjson.dumps([list(pair) for pair in delta.signature]).decode(),
                count + delta.count,
                min(first, delta.first_seen),
                max(last, delta.last_seen),
                orjson.dumps(document.merge_examples(examples, kept)).decode(),
                hour,
                stored,
            ),
        )

    # --- retention --------------------------------------------------------------------------

    async def prune(self, now: float | None = None) -> int:
        """Apply retention by age and by size now; return the number of records deleted."""
        return await self._run(self._prune_sync, self._clock() if now is None else now)

    def _used_bytes(self, conn: sqlite3.Connection) -> int:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size: int = conn.execute("PRAGMA page_size").fetchone()[0]
        return int((pages - free) * size)

    def _prune_sync(self, now: float) -> int:
        conn = self._db()
        cutoff = now - self._retention
        minute_cutoff = document.minute_of(cutoff)
        conn.execute("BEGIN IMMEDIATE")
        try:
            deleted = conn.execute("DELETE FROM records WHERE at < ?", (cutoff,)).rowcount
            conn.execute("DELETE FROM seen WHERE at < ?", (now - self._seen_window,))
            conn.execute("DELETE FROM batches WHERE at < ?", (cutoff,))
            conn.execute("DELETE FROM groups WHERE last_seen < ?", (cutoff,))
            for table in ("counters", "latency", "fields"):
                conn.execute(f"DELETE FROM {table} WHERE minute < ?", (minute_cutoff,))  # noqa: S608
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        while self._used_bytes(conn) > self._max_bytes:
            gone = conn.execute(
                "DELETE FROM records WHERE id IN (SELECT id FROM records ORDER BY at, id LIMIT ?)",
                (_PRUNE_CHUNK,),
            ).rowcount
            if not gone:
                break
            deleted += gone
        if deleted:
            conn.execute("PRAGMA incremental_vacuum")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted

    # --- reads ------------------------------------------------------------------------------

    @staticmethod
    def _window(
        since: float | None, until: float | None, endpoint: str | None, column: str = "minute"
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if since is not None:
            clauses.append(f"{column} >= ?")
            params.append(document.minute_of(since) if column == "minute" else since)
        if until is not None:
            clauses.append(f"{column} <= ?")
            params.append(until)
        if endpoint is not None:
            clauses.append("endpoint = ?")
            params.append(endpoint)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    async def summary(
        self, *, since: float | None = None, until: float | None = None, endpoint: str | None = None
    ) -> list[EndpointSummary]:
        return await self._read(self._summary_sync, since, until, endpoint)

    def _summary_sync(
        self, since: float | None, until: float | None, endpoint: str | None
    ) -> list[EndpointSummary]:
        conn = self._rdb()
        where, params = self._window(since, until, endpoint)
        sql = (
            "SELECT endpoint, sum(matches), sum(mismatches), sum(shadow_errors), sum(skipped),"  # noqa: S608 - only fixed clauses are interpolated
            f" sum(critical) FROM counters{where} GROUP BY endpoint ORDER BY endpoint"
        )
        rows = conn.execute(sql, params).fetchall()
        buckets: dict[tuple[str, str], dict[int, int]] = {}
        for ep, backend, bucket, n in conn.execute(
            f"SELECT endpoint, backend, bucket, sum(n) FROM latency{where}"  # noqa: S608
            " GROUP BY endpoint, backend, bucket",
            params,
        ):
            buckets.setdefault((ep, backend), {})[bucket] = n
        return [
            document.summary_of(ep, m, mm, se, sk, cr, buckets) for ep, m, mm, se, sk, cr in rows
        ]

    async def trend(
        self, *, since: float | None = None, until: float | None = None, endpoint: str | None = None
    ) -> list[TrendPoint]:
        return await self._read(self._trend_sync, since, until, endpoint)

    def _trend_sync(
        self, since: float | None, until: float | None, endpoint: str | None
    ) -> list[TrendPoint]:
        where, params = self._window(since, until, endpoint)
        sql = (
            "SELECT minute, endpoint, matches + mismatches + shadow_errors, mismatches,"  # noqa: S608 - only fixed clauses are interpolated
            f" shadow_errors FROM counters{where} ORDER BY minute, endpoint"
        )
        rows = self._rdb().execute(sql, params)
        return [TrendPoint(float(m), ep, c, mm, se) for m, ep, c, mm, se in rows]

    async def fields(
        self, *, endpoint: str | None = None, since: float | None = None, until: float | None = None
    ) -> list[FieldCount]:
        return await self._read(self._fields_sync, since, until, endpoint)

    def _fields_sync(
        self, since: float | None, until: float | None, endpoint: str | None
    ) -> list[FieldCount]:
        where, params = self._window(since, until, endpoint)
        rows = self._rdb().execute(
            f"SELECT endpoint, template, kind, sum(n) AS c FROM fields{where}"  # noqa: S608
            " GROUP BY endpoint, template, kind ORDER BY c DESC, endpoint, template, kind",
            params,
        )
        return [FieldCount(ep, t, k, c) for ep, t, k, c in rows]

    async def mismatches(
        self,
        *,
        endpoint: str | None = None,
        verdict: str | None = None,
        fingerprint: str | None = None,
        since: float | None = None,
        until: float | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[MismatchRecord]:
        """Newest first, by (received time, id)."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("endpoint", endpoint),
            ("verdict", verdict),
            ("fingerprint", fingerprint),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            clauses.append("at >= ?")
            params.append(since)
        if until is not None:
            clauses.append("at <= ?")
            params.append(until)
        if cursor is not None:
            at, record_id = decode_cursor("mismatches", cursor)
            clauses.append("(at < ? OR (at = ? AND id < ?))")
            params += [at, at, record_id]
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        limit = max(1, min(limit, 1000))
        sql = f"SELECT doc FROM records{where} ORDER BY at DESC, id DESC LIMIT ?"  # noqa: S608
        rows = await self._read(self._fetch, sql, [*params, limit + 1])
        records = [document.record_from_json(doc) for (doc,) in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = records[-1]
            next_cursor = encode_cursor("mismatches", last.at, last.id)
        return Page(tuple(records), next_cursor)

    def _fetch(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        return self._rdb().execute(sql, params).fetchall()

    async def mismatch(self, record_id: str) -> MismatchRecord | None:
        rows = await self._read(self._fetch, "SELECT doc FROM records WHERE id = ?", [record_id])
        return document.record_from_json(rows[0][0]) if rows else None

    _GROUP_COLUMNS = (
        "fingerprint, endpoint, signature, count, first_seen, last_seen, example_ids, state, note"
    )

    async def groups(
        self,
        *,
        endpoint: str | None = None,
        state: TriageState | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Group]:
        """Most frequent first (then by fingerprint, for a stable order)."""
        clauses: list[str] = []
        params: list[Any] = []
        if endpoint is not None:
            clauses.append("endpoint = ?")
            params.append(endpoint)
        if state is not None:
            clauses.append("state = ?")
            params.append(TriageState(state).value)
        if cursor is not None:
            count, fingerprint = decode_cursor("groups", cursor)
            clauses.append("(count < ? OR (count = ? AND fingerprint > ?))")
            params += [count, count, fingerprint]
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        limit = max(1, min(limit, 1000))
        sql = (
            f"SELECT {self._GROUP_COLUMNS} FROM groups{where}"  # noqa: S608
            " ORDER BY count DESC, fingerprint LIMIT ?"
        )
        rows = await self._read(self._fetch, sql, [*params, limit + 1])
        items = [group_of(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = encode_cursor("groups", items[-1].count, items[-1].fingerprint)
        return Page(tuple(items), next_cursor)

    async def set_triage(
        self, fingerprint: str, state: TriageState, note: str = ""
    ) -> Group | None:
        return await self._run(self._set_triage_sync, fingerprint, TriageState(state), note)

    def _set_triage_sync(self, fingerprint: str, state: TriageState, note: str) -> Group | None:
        conn = self._db()
        conn.execute(
            "UPDATE groups SET state = ?, note = ? WHERE fingerprint = ?",
            (state.value, note, fingerprint),
        )
        row = conn.execute(
            f"SELECT {self._GROUP_COLUMNS} FROM groups WHERE fingerprint = ?",  # noqa: S608
            (fingerprint,),
        ).fetchone()
        return group_of(row) if row else None

    async def health(self) -> StoreHealth:
        if self._executor is None:
            return StoreHealth(False, self.engine, "not open")
        try:
            size = await self._run(self._health_sync)
        except StoreError as exc:
            return StoreHealth(False, self.engine, str(exc))
        return StoreHealth(
            True, self.engine, self.path, {"bytes": size, "schema_version": SCHEMA_VERSION}
        )

    def _health_sync(self) -> int:
        return self._used_bytes(self._db())


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`, one transaction per step; return it."""
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"database schema version {version} is newer than this shadowproxy ({SCHEMA_VERSION})"
        )
    while version < SCHEMA_VERSION:
        step = MIGRATIONS[version + 1]
        # executescript commits first; the explicit BEGIN makes each step all-or-nothing.
        conn.executescript(f"BEGIN; {step}; PRAGMA user_version = {version + 1}; COMMIT;")
        version += 1
    return version


def group_of(row: Sequence[Any]) -> Group:
    fingerprint, endpoint, signature, count, first, last, examples, state, note = row
    return Group(
        fingerprint=fingerprint,
        endpoint=endpoint,
        signature=tuple((str(t), str(k)) for t, k in orjson.loads(signature)),
        count=count,
        first_seen=first,
        last_seen=last,
        example_ids=tuple(orjson.loads(examples)),
        state=TriageState(state),
        note=note,
    )
