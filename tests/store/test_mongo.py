"""MongoDB specifics on a real MongoDB-wire server: TTL retention, unique ids, standalone
servers without transactions, and an outage in the middle of traffic."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError
from secantus.server import SecantusDBServer

from shadowproxy.model import Verdict
from shadowproxy.store import open_store
from shadowproxy.store.contract import StoreError, StoreURLError
from shadowproxy.store.mongo import SCHEMA_VERSION, MongoStore
from shadowproxy.store.writer import StoreWriter
from tests.factories import make_comparison
from tests.polling import eventually
from tests.store.conftest import start_mongo
from tests.store.test_writer import free_port


async def test_ttl_index_expires_old_records(mongo_url: str) -> None:
    """Records, groups, counters and seen ids older than the retention are removed by the server."""
    store = open_store(mongo_url, retention_days=2 / 86400)
    await store.aopen()
    await store.write([make_comparison(received_at=time.time() - 10) for _ in range(3)])
    await store.write([make_comparison(verdict=Verdict.MATCH, received_at=time.time() - 120)])
    assert 3 == len((await store.mismatches()).items)

    deadline = time.monotonic() + 15
    while (await store.mismatches()).items or (await store.summary()):
        assert time.monotonic() < deadline, "TTL sweep did not expire the records"
        await asyncio.sleep(0.25)

    assert () == (await store.groups()).items
    await store.aclose()


async def test_a_batch_retried_after_its_ids_expired_counts_nothing_twice(mongo_url: str) -> None:
    """Exchange ids expire from ``seen`` after the window; the batch key still stops a retry."""
    store = MongoStore(mongo_url, mongo_url.rsplit("/", 1)[1], seen_window=1)
    await store.aopen()
    batch = [
        make_comparison(verdict=v, fingerprint=f"g{i}")
        for i in range(5)
        for v in (Verdict.MATCH, Verdict.MISMATCH)
    ]
    await store.write(batch)

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url)
    try:
        deadline = time.monotonic() + 15
        while await client.get_default_database().seen.count_documents({}):
            assert time.monotonic() < deadline, "seen ids did not expire"
            await asyncio.sleep(0.25)
    finally:
        await client.close()
    await store.write(batch)

    [summary] = await store.summary()
    assert (10, 5) == (summary.compared, summary.mismatches)
    assert 5 == len((await store.mismatches()).items)
    await store.aclose()


async def test_reopening_with_a_new_retention_changes_the_ttl(mongo_url: str) -> None:
    """A changed retention updates the TTL index instead of failing start-up."""
    first = open_store(mongo_url, retention_days=14)
    await first.aopen()
    await first.aclose()
    second = open_store(mongo_url, retention_days=7)
    await second.aopen()

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url)
    indexes = await client.get_default_database().records.index_information()
    await client.close()
    await second.aclose()

    assert 7 * 86400 == indexes["ttl_at_dt"]["expireAfterSeconds"]


async def test_indexes_and_schema_version_are_made_at_start_up(mongo_url: str) -> None:
    """aopen creates the query indexes and records the schema version; doing it twice is fine;
    a database from a newer shadowproxy is refused."""
    for _ in range(2):
        store = open_store(mongo_url)
        await store.aopen()
        await store.aclose()

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url)
    db = client.get_default_database()
    try:
        records = await db.records.index_information()
        groups = await db.groups.index_information()
        meta = await db.meta.find_one({"_id": "schema"})
        await db.meta.update_one({"_id": "schema"}, {"$set": {"version": 99}})
        newer = open_store(mongo_url)
        with pytest.raises(StoreError, match="newer"):
            await newer.aopen()
        await newer.aclose()
    finally:
        await client.close()

    assert {"at", "endpoint_at", "fingerprint_at", "verdict_at", "ttl_at_dt"} <= set(records)
    assert {"count", "endpoint_count", "state_count", "ttl_last_dt"} <= set(groups)
    assert meta is not None
    assert SCHEMA_VERSION == meta["version"]


async def test_exchange_ids_are_unique(mongo_url: str) -> None:
    """Records and counted ids refuse a second entry with the same exchange id."""
    store = open_store(mongo_url)
    await store.aopen()
    comparison = make_comparison()
    await store.write([comparison])

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url)
    try:
        with pytest.raises(DuplicateKeyError):
            await client.get_default_database().records.insert_one({"_id": comparison.exchange.id})
        with pytest.raises(DuplicateKeyError):
            await client.get_default_database().seen.insert_one({"ids": [comparison.exchange.id]})
    finally:
        await client.close()
        await store.aclose()


async def test_a_standalone_server_without_transactions_is_still_idempotent(
    tmp_path: Path,
) -> None:
    """On a server that is not a replica set, batches are not transactions, yet a replay still
    counts and stores nothing twice."""
    server = start_mongo(replica_set_name=None)
    try:
        store = MongoStore(f"mongodb://127.0.0.1:{server.port}/solo", "solo")
        await store.aopen()
        assert not store.transactions
        batch = [make_comparison(verdict=v) for v in (Verdict.MATCH, Verdict.MISMATCH)] * 3

        await store.write(batch)
        await store.write(batch)

        [summary] = await store.summary()
        assert (2, 1) == (summary.compared, summary.mismatches)
        assert 1 == len((await store.mismatches()).items)
        await store.aclose()
    finally:
        server.stop()


@pytest.mark.parametrize("replica_set", ["secantus", None])
async def test_concurrent_writers_with_overlapping_batches_count_once(
    replica_set: str | None,
) -> None:
    """Two proxies writing overlapping batches at once (as after a failover replay): with or
    without transactions, each exchange is counted and stored once."""
    server = start_mongo(replica_set_name=replica_set)
    url = f"mongodb://127.0.0.1:{server.port}/both"
    first, second = open_store(url), open_store(url)
    try:
        await first.aopen()
        await second.aopen()
        batch = [
            make_comparison(
                verdict=Verdict.MISMATCH if i % 2 else Verdict.MATCH, fingerprint=f"g{i % 7}"
            )
            for i in range(200)
        ]

        for start in range(0, 200, 40):
            await asyncio.gather(
                first.write(batch[start : start + 40]),
                second.write(batch[max(0, start - 20) : start + 30]),
            )

        [summary] = await first.summary()
        assert (200, 100) == (summary.compared, summary.mismatches)
        assert 100 == sum(g.count for g in (await first.groups()).items)
        assert 100 == len((await second.mismatches(limit=500)).items)
    finally:
        await first.aclose()
        await second.aclose()
        server.stop()


@pytest.mark.parametrize(
    "url",
    ["mongodb://127.0.0.1:27017/db?tls=maybe", "mongodb://h:notaport/db", "mongodb://h/db?foo=1"],
)
def test_a_malformed_connection_string_fails_at_start_up(url: str) -> None:
    """A connection string PyMongo would reject stops start-up with one clear line."""
    with pytest.raises(StoreURLError, match="bad MongoDB connection string"):
        open_store(url)


async def test_killing_the_server_mid_traffic_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """Kill MongoDB during a stream of submits and restart it on the same port: every comparison
    is in the store exactly once, and no submit was refused."""
    port = free_port()
    data = tmp_path / "mongo-data"
    server: SecantusDBServer = start_mongo(port=port, storage=str(data))
    store = open_store(f"mongodb://127.0.0.1:{port}/outage?serverSelectionTimeoutMS=400")
    writer = StoreWriter(
        store, batch=25, flush_interval=0.05, buffer=100, spool_dir=tmp_path / "spool"
    )
    await writer.start()
    verdicts = (Verdict.MATCH, Verdict.MISMATCH, Verdict.SHADOW_ERROR)
    batch = [
        make_comparison(id=f"x{i:05d}", verdict=verdicts[i % 3], fingerprint=f"g{i}")
        for i in range(900)
    ]
    refused = 0
    try:
        for i, comparison in enumerate(batch):
            refused += not writer.submit(comparison)
            await asyncio.sleep(0.002)
            if i == 300:
                assert writer.stats().written > 0
                await asyncio.to_thread(server.stop)
            if i == 600:
                await eventually(lambda: not writer.stats().store_up)
                assert writer.stats().spooled_records > 0
                server = await asyncio.to_thread(start_mongo, port, str(data))
        await eventually(
            lambda: (
                writer.stats().written >= 900
                and not writer.stats().buffered
                and not writer.stats().spooled_records
            ),
            timeout=60,
        )
        await writer.aclose()

        assert 0 == refused
        assert writer.stats().errors > 0
        [summary] = await store.summary()
        assert (900, 300, 300, 300) == (
            summary.compared,
            summary.matches,
            summary.mismatches,
            summary.shadow_errors,
        )
        ids: list[str] = []
        cursor = None
        while True:
            page = await store.mismatches(limit=200, cursor=cursor)
            ids += [r.id for r in page.items]
            if (cursor := page.next_cursor) is None:
                break
        assert sorted(c.exchange.id for c in batch if c.verdict is not Verdict.MATCH) == sorted(ids)
    finally:
        await store.aclose()
        server.stop()
