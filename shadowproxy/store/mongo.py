"""The production store: MongoDB through PyMongo's native async client (``AsyncMongoClient``).

The only module that imports :mod:`pymongo`. Collections::

    records   one mismatch or shadow error per exchange id (``_id``); TTL on ``at_dt``
    groups    one per fingerprint (``_id``): counts, examples, triage, hourly storage quota
    counters  one per (minute, endpoint): verdict counts, critical count, latency buckets
    fields    one per (minute, endpoint, template, kind): comparisons where that field differed
    seen      one per written batch: the exchange ids it counted (unique across documents);
              TTL of SEEN_WINDOW after the write
    batches   one per written batch key; a batch retried after a long outage is skipped whole
    meta      the schema version

Idempotence: on a replica set or sharded cluster (what production runs, and what lets Mongo
transactions work) a batch is one transaction: the ``seen`` ids, the batch key and every ``$inc``
commit together or not at all, so a replayed batch counts nothing twice and loses nothing. On a
standalone server records are inserted first, then the ids are claimed in ``seen``, then only
claimed ones are counted, then the batch key is written: a crash between claiming and counting
can lose that batch's counts, never double them.

Retention is a TTL index on every collection but ``meta``; the server expires documents itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)
from pymongo.uri_parser import parse_uri

from shadowproxy.model import Comparison
from shadowproxy.store import document, latency
from shadowproxy.store.contract import (
    EndpointSummary,
    FieldCount,
    Group,
    MismatchRecord,
    Page,
    StoreError,
    StoreHealth,
    StoreURLError,
    TrendPoint,
    TriageState,
)
from shadowproxy.store.cursor import decode_cursor, encode_cursor

SCHEMA_VERSION = 1
_DUPLICATE_KEY = 11000
_INDEX_OPTIONS_CONFLICT = {85, 86}
_TRANSACTION_ATTEMPTS = 4
_TIMEOUT_MS = 3000
"""Server selection and connect timeout unless the URL sets its own: fail fast, let the writer
spool, rather than hold a batch for PyMongo's default 30 s."""
_SOCKET_TIMEOUT_MS = 30_000
"""A server that accepted a request and went silent is an error after this, not a hang."""

_LAT = {document.PRIMARY: "p", document.SHADOW: "s"}
_LAT_FIELDS = [f"{prefix}{i:02d}" for prefix in ("p", "s") for i in range(latency.BUCKETS)]


class _InTransactionConflictError(Exception):
    """A duplicate key inside a transaction, which aborted it."""


@dataclass(frozen=True, slots=True)
class _GroupState:
    """A group's hourly storage quota and examples after a batch."""

    hour: int
    stored: int
    examples: list[str]


def _dt(at: float) -> datetime:
    return datetime.fromtimestamp(at, tz=UTC)


def _errors(action: str, exc: PyMongoError) -> StoreError:
    return StoreError(f"mongodb {action}: {type(exc).__name__}: {exc}")


class MongoStore:
    """The MongoDB engine (see the module docstring)."""

    engine = "mongodb"

    def __init__(
        self,
        url: str,
        database: str = "shadowproxy",
        *,
        body_max: int = 65536,
        group_store_per_hour: int = 50,
        retention_days: float = 14.0,
        seen_window: float = document.SEEN_WINDOW,
    ) -> None:
        if url.lower().startswith("mongodb://"):
            # Fail at start-up, not at the first write. (SRV URLs would need DNS here: they are
            # checked by the client at aopen.)
            try:
                parse_uri(url, warn=False)
            except (PyMongoError, ValueError) as exc:
                raise StoreURLError(f"--store: bad MongoDB connection string: {exc}") from None
        self._url = url
        self._database = database
        self._body_max = body_max
        self._quota = group_store_per_hour
        self._ttl = max(1, round(retention_days * 86400))
        self._seen_ttl = max(1, round(seen_window))
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self._db: AsyncDatabase[dict[str, Any]] | None = None
        self._transactions = False

    @property
    def transactions(self) -> bool:
        """True when batches are written in a transaction (replica set or sharded cluster)."""
        return self._transactions

    def _database_handle(self) -> AsyncDatabase[dict[str, Any]]:
        if self._db is None:
            raise StoreError("mongodb store is not open")
        return self._db

    # --- lifecycle --------------------------------------------------------------------------

    async def aopen(self) -> None:
        """Connect, check the schema version, create indexes (idempotent; retry freely).

        The client is made once and kept across failed attempts: its monitor reconnects by
        itself, and making a client per attempt would churn sockets while the server is down.
        """
        if self._db is not None:
            return
        if self._client is None:
            options: dict[str, Any] = {"appname": "shadowproxy"}
            lowered = self._url.lower()
            for name, value in (
                ("serverSelectionTimeoutMS", _TIMEOUT_MS),
                ("connectTimeoutMS", _TIMEOUT_MS),
                ("socketTimeoutMS", _SOCKET_TIMEOUT_MS),
            ):
                if name.lower() not in lowered:
                    options[name] = value
            try:
                self._client = AsyncMongoClient(self._url, **options)
            except (PyMongoError, ValueError, TypeError) as exc:
                raise StoreError(f"mongodb: bad connection string: {exc}") from None
        client = self._client
        try:
            db = client[self._database]
            hello = await client.admin.command("hello")
            self._transactions = "setName" in hello or hello.get("msg") == "isdbgrid"
            await self._check_schema(db)
            await self._create_indexes(db)
        except PyMongoError as exc:
            raise _errors("open", exc) from exc
        self._db = db

    async def _check_schema(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        meta = await db.meta.find_one({"_id": "schema"})
        version = int(meta["version"]) if meta else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"mongodb schema version {version} is newer than this shadowproxy "
                f"({SCHEMA_VERSION})"
            )
        if version < SCHEMA_VERSION:
            await db.meta.update_one(
                {"_id": "schema"}, {"$set": {"version": SCHEMA_VERSION}}, upsert=True
            )

    async def _create_indexes(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        records = db.records
        await records.create_index([("at", DESCENDING), ("_id", DESCENDING)], name="at")
        for field in ("endpoint", "fingerprint", "verdict"):
            await records.create_index(
                [(field, ASCENDING), ("at", DESCENDING), ("_id", DESCENDING)], name=f"{field}_at"
            )
        await db.groups.create_index([("count", DESCENDING), ("_id", ASCENDING)], name="count")
        for field in ("endpoint", "state"):
            await db.groups.create_index(
                [(field, ASCENDING), ("count", DESCENDING), ("_id", ASCENDING)],
                name=f"{field}_count",
            )
        await db.counters.create_index(
            [("minute", ASCENDING), ("endpoint", ASCENDING)], name="minute"
        )
        await db.fields.create_index(
            [("minute", ASCENDING), ("endpoint", ASCENDING)], name="minute"
        )
        await db.seen.create_index("ids", name="ids", unique=True)
        for name, field in (
            ("records", "at_dt"),
            ("groups", "last_dt"),
            ("counters", "dt"),
            ("fields", "dt"),
            ("batches", "dt"),
        ):
            await self._ttl_index(db, name, field, self._ttl)
        await self._ttl_index(db, "seen", "dt", self._seen_ttl)

    async def _ttl_index(
        self, db: AsyncDatabase[dict[str, Any]], name: str, field: str, seconds: int
    ) -> None:
        try:
            await db[name].create_index(field, name=f"ttl_{field}", expireAfterSeconds=seconds)
        except OperationFailure as exc:
            if exc.code not in _INDEX_OPTIONS_CONFLICT:
                raise
            # Retention changed since the index was made: change the index, keep the data.
            await db.command(
                "collMod",
                name,
                index={"keyPattern": {field: 1}, "expireAfterSeconds": seconds},
            )

    async def aclose(self) -> None:
        client, self._client, self._db = self._client, None, None
        if client is not None:
            await client.close()

    # --- writes -----------------------------------------------------------------------------

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncClientSession | None]:
        if not self._transactions or self._client is None:
            yield None
            return
        async with self._client.start_session() as session, await session.start_transaction():
            yield session

    async def write(self, batch: Sequence[Comparison]) -> None:
        """Count, group and store a batch; idempotent by exchange id (see the module docstring)."""
        if not batch:
            return
        db = self._database_handle()
        unique: dict[str, Comparison] = {}
        for comparison in batch:
            unique.setdefault(comparison.exchange.id, comparison)
        try:
            for attempt in range(_TRANSACTION_ATTEMPTS):
                try:
                    async with self._session() as session:
                        await self._write(db, unique, session)
                    return
                except _InTransactionConflictError:
                    break
                except PyMongoError as exc:
                    # Two writers touching the same documents: the loser's transaction aborts
                    # as a whole and may run again, after a jittered pause so they part.
                    # A network error is labelled transient too, but retrying it here would
                    # only hold the batch: the writer backs off and spools instead.
                    conflict = exc.has_error_label("TransientTransactionError") and not isinstance(
                        exc, ConnectionFailure
                    )
                    if not conflict:
                        raise
                    await asyncio.sleep(random.uniform(0.005, 0.03) * (attempt + 1))
            # A duplicate inside a transaction aborted it (a concurrent writer, or records left
            # by an earlier non-transactional run), or conflicts kept aborting it: redo it the
            # duplicate-tolerant way.
            await self._write(db, unique, None)
        except PyMongoError as exc:
            raise _errors("write", exc) from exc

    async def _write(
        self,
        db: AsyncDatabase[dict[str, Any]],
        unique: dict[str, Comparison],
        session: AsyncClientSession | None,
    ) -> None:
        key = document.batch_key(unique.values())
        if await db.batches.find_one({"_id": key}, {"_id": 1}, session=session):
            return
        existing = await self._seen(db, list(unique), session)
        fresh = [c for i, c in unique.items() if i not in existing]
        if not fresh:
            return
        # Building records (decoding, capping, serialising) is CPU work: keep it off the loop
        # that serves clients.
        tally = await asyncio.to_thread(document.tally, fresh)
        records, groups = await self._plan(db, tally, session)
        if records:
            await self._insert(db.records, records, session)
        claimed = await self._claim(db, fresh, session)
        if len(claimed) < len(fresh):
            tally = document.tally(claimed)
            groups = {fp: groups[fp] for fp in tally.groups}
        await self._count(db, tally, groups, session)
        await self._insert(db.batches, [{"_id": key, "dt": datetime.now(tz=UTC)}], session)

    @staticmethod
    async def _existing(
        collection: AsyncCollection[dict[str, Any]],
        ids: list[str],
        session: AsyncClientSession | None,
    ) -> set[str]:
        return {
            doc["_id"]
            async for doc in collection.find({"_id": {"$in": ids}}, {"_id": 1}, session=session)
        }

    @staticmethod
    async def _insert(
        collection: AsyncCollection[dict[str, Any]],
        docs: list[dict[str, Any]],
        session: AsyncClientSession | None,
    ) -> set[int]:
        """Insert; return the indexes of documents whose ``_id`` already existed."""
        try:
            await collection.insert_many(docs, ordered=False, session=session)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != _DUPLICATE_KEY for e in errors):
                raise
            if session is not None:
                raise _InTransactionConflictError from exc
            return {int(e["index"]) for e in errors}
        return set()

    async def _apply(
        self,
        collection: AsyncCollection[dict[str, Any]],
        changes: list[tuple[str, dict[str, Any], dict[str, Any]]],
        session: AsyncClientSession | None,
    ) -> None:
        """(id, whole new document, update) triples: insert the new ones, update the others.

        Inserts are far cheaper than upserts; an id that appeared meanwhile falls back to the
        upsert form of its update."""
        if not changes:
            return
        existing = await self._existing(collection, [c[0] for c in changes], session)
        inserts = [c for c in changes if c[0] not in existing]
        updates = [c for c in changes if c[0] in existing]
        if inserts:
            clashed = await self._insert(collection, [doc for _, doc, _ in inserts], session)
            updates += [inserts[i] for i in sorted(clashed)]
        if updates:
            await collection.bulk_write(
                [UpdateOne({"_id": i}, update, upsert=True) for i, _, update in updates],
                ordered=False,
                session=session,
            )

    @staticmethod
    async def _seen(
        db: AsyncDatabase[dict[str, Any]], ids: list[str], session: AsyncClientSession | None
    ) -> set[str]:
        """Which of ``ids`` were already counted."""
        wanted = set(ids)
        found: set[str] = set()
        async for doc in db.seen.find({"ids": {"$in": ids}}, {"ids": 1}, session=session):
            found.update(i for i in doc["ids"] if i in wanted)
        return found

    async def _claim(
        self,
        db: AsyncDatabase[dict[str, Any]],
        fresh: list[Comparison],
        session: AsyncClientSession | None,
    ) -> list[Comparison]:
        """Record the batch's ids in ``seen``; return the comparisons this call claimed.

        One document per batch holds its ids under a unique multikey index: a single insert
        instead of one per comparison, and an id can still be claimed only once."""
        claimable = fresh
        for _ in range(3):
            ids = sorted(c.exchange.id for c in claimable)
            doc = {
                "_id": hashlib.sha256("\x00".join(ids).encode()).hexdigest()[:32],
                "ids": ids,
                "dt": datetime.now(tz=UTC),
            }
            try:
                await db.seen.insert_one(doc, session=session)
            except DuplicateKeyError as exc:
                if session is not None:
                    raise _InTransactionConflictError from exc
                # Another writer claimed some of these meanwhile: claim the rest.
                taken = await self._seen(db, ids, None)
                claimable = [c for c in claimable if c.exchange.id not in taken]
                if not claimable:
                    return []
                continue
            return claimable
        raise StoreError("mongodb write: could not claim exchange ids (concurrent writers)")

    async def _plan(
        self,
        db: AsyncDatabase[dict[str, Any]],
        tally: document.Tally,
        session: AsyncClientSession | None,
    ) -> tuple[list[dict[str, Any]], dict[str, _GroupState]]:
        """Which records to store within each group's hourly quota, and each group's new state."""
        current = {
            doc["_id"]: doc
            async for doc in db.groups.find(
                {"_id": {"$in": list(tally.groups)}},
                {"hour": 1, "hour_stored": 1, "example_ids": 1},
                session=session,
            )
        }
        return await asyncio.to_thread(self._decide, tally, current)

    def _decide(
        self, tally: document.Tally, current: dict[str, dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], dict[str, _GroupState]]:
        records: list[dict[str, Any]] = []
        states: dict[str, _GroupState] = {}
        for fingerprint, delta in tally.groups.items():
            doc = current.get(fingerprint, {})
            hour, stored = int(doc.get("hour", 0)), int(doc.get("hour_stored", 0))
            kept: list[str] = []
            for comparison in delta.members:
                at_hour = document.hour_of(comparison.exchange.request.received_at)
                if at_hour != hour:
                    hour, stored = at_hour, 0
                if stored >= self._quota:
                    continue
                stored += 1
                record = document.to_record(comparison, self._body_max)
                body = document.record_to_doc(record, binary=True)
                body["at_dt"] = _dt(record.at)
                records.append(body)
                kept.append(record.id)
            examples = document.merge_examples(doc.get("example_ids", []), kept)
            states[fingerprint] = _GroupState(hour, stored, examples)
        return records, states

    async def _count(
        self,
        db: AsyncDatabase[dict[str, Any]],
        tally: document.Tally,
        groups: dict[str, _GroupState],
        session: AsyncClientSession | None,
    ) -> None:
        counter_incs: dict[tuple[int, str], dict[str, int]] = {}
        for (minute, endpoint), row in tally.counters.items():
            counter_incs[(minute, endpoint)] = {
                name: n for name, n in zip(document.VERDICT_COLUMNS, row, strict=True) if n
            }
        for (minute, endpoint, backend, bucket), n in tally.latency.items():
            incs = counter_incs.setdefault((minute, endpoint), {})
            key = f"{_LAT[backend]}{bucket:02d}"
            incs[key] = incs.get(key, 0) + n
        counters = []
        for (minute, endpoint), incs in counter_incs.items():
            fixed = {"minute": minute, "endpoint": endpoint, "dt": _dt(minute)}
            counters.append(
                (
                    f"{minute}|{endpoint}",
                    {"_id": f"{minute}|{endpoint}", **fixed, **incs},
                    {"$inc": incs, "$setOnInsert": fixed},
                )
            )
        await self._apply(db.counters, counters, session)
        fields = []
        for (minute, endpoint, template, kind), n in tally.fields.items():
            key = hashlib.sha256(
                f"{minute}\x00{endpoint}\x00{template}\x00{kind}".encode()
            ).hexdigest()[:24]
            fixed = {
                "minute": minute,
                "endpoint": endpoint,
                "template": template,
                "kind": kind,
                "dt": _dt(minute),
            }
            fields.append(
                (key, {"_id": key, **fixed, "n": n}, {"$inc": {"n": n}, "$setOnInsert": fixed})
            )
        await self._apply(db.fields, fields, session)
        changes = []
        for fingerprint, delta in tally.groups.items():
            state = groups[fingerprint]
            fixed = {
                "endpoint": delta.endpoint,
                "state": TriageState.OPEN.value,
                "note": "",
                "signature": [list(pair) for pair in delta.signature],
            }
            mutable = {
                "hour": state.hour,
                "hour_stored": state.stored,
                "example_ids": state.examples,
            }
            changes.append(
                (
                    fingerprint,
                    {
                        "_id": fingerprint,
                        **fixed,
                        **mutable,
                        "count": delta.count,
                        "first_seen": delta.first_seen,
                        "last_seen": delta.last_seen,
                        "last_dt": _dt(delta.last_seen),
                    },
                    {
                        "$set": mutable,
                        "$setOnInsert": fixed,
                        "$inc": {"count": delta.count},
                        "$min": {"first_seen": delta.first_seen},
                        "$max": {"last_seen": delta.last_seen, "last_dt": _dt(delta.last_seen)},
                    },
                )
            )
        await self._apply(db.groups, changes, session)

    # --- reads ------------------------------------------------------------------------------

    @staticmethod
    def _window(since: float | None, until: float | None, endpoint: str | None) -> dict[str, Any]:
        query: dict[str, Any] = {}
        minute: dict[str, Any] = {}
        if since is not None:
            minute["$gte"] = document.minute_of(since)
        if until is not None:
            minute["$lte"] = until
        if minute:
            query["minute"] = minute
        if endpoint is not None:
            query["endpoint"] = endpoint
        return query

    async def summary(
        self, *, since: float | None = None, until: float | None = None, endpoint: str | None = None
    ) -> list[EndpointSummary]:
        db = self._database_handle()
        sums: dict[str, Any] = {"_id": "$endpoint"}
        for name in (*document.VERDICT_COLUMNS, *_LAT_FIELDS):
            sums[name] = {"$sum": f"${name}"}
        pipeline = [
            {"$match": self._window(since, until, endpoint)},
            {"$group": sums},
            {"$sort": {"_id": 1}},
        ]
        out: list[EndpointSummary] = []
        try:
            cursor = await db.counters.aggregate(pipeline)
            async for row in cursor:
                buckets: dict[tuple[str, str], dict[int, int]] = {}
                for backend, prefix in _LAT.items():
                    buckets[(row["_id"], backend)] = {
                        i: int(row.get(f"{prefix}{i:02d}") or 0) for i in range(latency.BUCKETS)
                    }
                counts = [int(row.get(name) or 0) for name in document.VERDICT_COLUMNS]
                out.append(_summary_of(row["_id"], counts, buckets))
        except PyMongoError as exc:
            raise _errors("summary", exc) from exc
        return out

    async def trend(
        self, *, since: float | None = None, until: float | None = None, endpoint: str | None = None
    ) -> list[TrendPoint]:
        db = self._database_handle()
        try:
            return [
                TrendPoint(
                    float(doc["minute"]),
                    doc["endpoint"],
                    int(
                        doc.get("matches", 0)
                        + doc.get("mismatches", 0)
                        + doc.get("shadow_errors", 0)
                    ),
                    int(doc.get("mismatches", 0)),
                    int(doc.get("shadow_errors", 0)),
                )
                async for doc in db.counters.find(
                    self._window(since, until, endpoint),
                    {"minute": 1, "endpoint": 1, "matches": 1, "mismatches": 1, "shadow_errors": 1},
                ).sort([("minute", ASCENDING), ("endpoint", ASCENDING)])
            ]
        except PyMongoError as exc:
            raise _errors("trend", exc) from exc

    async def fields(
        self, *, endpoint: str | None = None, since: float | None = None, until: float | None = None
    ) -> list[FieldCount]:
        db = self._database_handle()
        pipeline = [
            {"$match": self._window(since, until, endpoint)},
            {
                "$group": {
                    "_id": {"e": "$endpoint", "t": "$template", "k": "$kind"},
                    "n": {"$sum": "$n"},
                }
            },
        ]
        try:
            cursor = await db.fields.aggregate(pipeline)
            rows = [
                FieldCount(row["_id"]["e"], row["_id"]["t"], row["_id"]["k"], int(row["n"]))
                async for row in cursor
            ]
        except PyMongoError as exc:
            raise _errors("fields", exc) from exc
        rows.sort(key=lambda f: (-f.count, f.endpoint, f.template, f.kind))
        return rows

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
        db = self._database_handle()
        query: dict[str, Any] = {}
        for name, value in (
            ("endpoint", endpoint),
            ("verdict", verdict),
            ("fingerprint", fingerprint),
        ):
            if value is not None:
                query[name] = value
        at: dict[str, Any] = {}
        if since is not None:
            at["$gte"] = since
        if until is not None:
            at["$lte"] = until
        if at:
            query["at"] = at
        if cursor is not None:
            last_at, last_id = decode_cursor("mismatches", cursor)
            query["$or"] = [{"at": {"$lt": last_at}}, {"at": last_at, "_id": {"$lt": last_id}}]
        limit = max(1, min(limit, 1000))
        try:
            docs = (
                await db.records.find(query)
                .sort([("at", DESCENDING), ("_id", DESCENDING)])
                .limit(limit + 1)
                .to_list()
            )
        except PyMongoError as exc:
            raise _errors("mismatches", exc) from exc
        records = [document.record_from_doc(doc) for doc in docs[:limit]]
        next_cursor = None
        if len(docs) > limit:
            next_cursor = encode_cursor("mismatches", records[-1].at, records[-1].id)
        return Page(tuple(records), next_cursor)

    async def mismatch(self, record_id: str) -> MismatchRecord | None:
        db = self._database_handle()
        try:
            doc = await db.records.find_one({"_id": record_id})
        except PyMongoError as exc:
            raise _errors("mismatch", exc) from exc
        return document.record_from_doc(doc) if doc else None

    async def groups(
        self,
        *,
        endpoint: str | None = None,
        state: TriageState | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Group]:
        """Most frequent first (then by fingerprint, for a stable order)."""
        db = self._database_handle()
        query: dict[str, Any] = {}
        if endpoint is not None:
            query["endpoint"] = endpoint
        if state is not None:
            query["state"] = TriageState(state).value
        if cursor is not None:
            count, fingerprint = decode_cursor("groups", cursor)
            query["$or"] = [
                {"count": {"$lt": count}},
                {"count": count, "_id": {"$gt": fingerprint}},
            ]
        limit = max(1, min(limit, 1000))
        try:
            docs = (
                await db.groups.find(query)
                .sort([("count", DESCENDING), ("_id", ASCENDING)])
                .limit(limit + 1)
                .to_list()
            )
        except PyMongoError as exc:
            raise _errors("groups", exc) from exc
        items = [_group_of(doc) for doc in docs[:limit]]
        next_cursor = None
        if len(docs) > limit:
            next_cursor = encode_cursor("groups", items[-1].count, items[-1].fingerprint)
        return Page(tuple(items), next_cursor)

    async def set_triage(
        self, fingerprint: str, state: TriageState, note: str = ""
    ) -> Group | None:
        db = self._database_handle()
        try:
            doc = await db.groups.find_one_and_update(
                {"_id": fingerprint},
                {"$set": {"state": TriageState(state).value, "note": note}},
                return_document=ReturnDocument.AFTER,
            )
        except PyMongoError as exc:
            raise _errors("set_triage", exc) from exc
        return _group_of(doc) if doc else None

    async def health(self) -> StoreHealth:
        if self._client is None or self._db is None:
            return StoreHealth(False, self.engine, "not open")
        try:
            await self._client.admin.command("ping")
        except PyMongoError as exc:
            return StoreHealth(False, self.engine, f"{type(exc).__name__}: {exc}"[:300])
        return StoreHealth(
            True,
            self.engine,
            self._database,
            {"transactions": self._transactions, "schema_version": SCHEMA_VERSION},
        )


def _summary_of(
    endpoint: str, counts: list[int], buckets: dict[tuple[str, str], dict[int, int]]
) -> EndpointSummary:
    matches, mismatches, shadow_errors, skipped, critical = counts
    return document.summary_of(
        endpoint, matches, mismatches, shadow_errors, skipped, critical, buckets
    )


def _group_of(doc: dict[str, Any]) -> Group:
    return Group(
        fingerprint=str(doc["_id"]),
        endpoint=doc["endpoint"],
        signature=tuple((str(t), str(k)) for t, k in doc.get("signature", [])),
        count=int(doc.get("count", 0)),
        first_seen=float(doc.get("first_seen", 0.0)),
        last_seen=float(doc.get("last_seen", 0.0)),
        example_ids=tuple(doc.get("example_ids", [])),
        state=TriageState(doc.get("state", TriageState.OPEN.value)),
        note=doc.get("note", ""),
    )
