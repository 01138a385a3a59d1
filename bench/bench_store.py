"""Sustained batched write throughput of the store, SQLite and MongoDB, in records per second.

Run by hand:  .venv/bin/python bench/bench_store.py [--records N] [--mongo-records N]

For each engine it measures, in the same run:

- ``writer``: comparisons submitted to a :class:`StoreWriter` as fast as the loop allows, until
  the last one is in the store (batching, counting, grouping, record building, the engine);
- ``reference``: the same number of already-serialised record documents inserted with the
  engine's plainest bulk call (sqlite3 ``executemany`` in one transaction per batch; PyMongo
  ``insert_many``): the floor any store design pays for that engine on this machine.

Two workloads: ``all-mismatch`` (every comparison a mismatch, each stored in full: the worst
case) and ``production-mix`` (90 % match, 8 % mismatch in 40 groups, 2 % shadow error).
MongoDB is secantusdb started in-process (a Python server: slower than mongod, so a lower bound).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pymongo import AsyncMongoClient
from secantus.server import SecantusDBServer

from shadowproxy.model import Comparison, Difference, DiffKind, Verdict
from shadowproxy.store import document, open_store
from shadowproxy.store.writer import StoreWriter
from tests.factories import make_comparison, make_response, title_document

BATCH = 200


def workload(kind: str, count: int, seed: int = 7) -> list[Comparison]:
    """Realistic comparisons: title documents of about 1 KB, gzip'd primary bodies."""
    rng = random.Random(seed)
    primary = make_response(title_document(), gzipped=True)
    shadow = make_response(title_document(rating=8.69))
    out: list[Comparison] = []
    start = time.time() - 30
    for i in range(count):
        at = start + i * 0.001
        if kind == "all-mismatch":
            verdict = Verdict.MISMATCH
        else:
            roll = rng.random()
            verdict = (Verdict.MATCH if roll < 0.90 else
                       Verdict.MISMATCH if roll < 0.98 else Verdict.SHADOW_ERROR)
        group = rng.randrange(40)
        diffs = (Difference("/rating", "/rating", DiffKind.VALUE, 8.7, 8.69),
                 Difference(f"/list/{group}/id", f"/list/*/f{group}", DiffKind.TYPE, group,
                            str(group)))
        out.append(make_comparison(
            id=f"{kind[:3]}{i:09d}", endpoint=f"GET /api/v1/title/{{id}}#{group % 8}",
            verdict=verdict, received_at=at, primary=primary,
            shadow=shadow if verdict is Verdict.MISMATCH else None,
            differences=diffs if verdict is Verdict.MISMATCH else (),
            fingerprint=f"fp{group}" if kind == "production-mix" else f"u{i}",
        ))
    return out


async def through_writer(url: str, batch: list[Comparison]) -> float:
    """Records/s from first submit until the writer has written the last one."""
    store = open_store(url, group_store_per_hour=1_000_000)
    await store.aopen()
    writer = StoreWriter(store, batch=BATCH, flush_interval=0.05, buffer=len(batch) + 1)
    await writer.start()
    started = time.perf_counter()
    for i, comparison in enumerate(batch):
        writer.submit(comparison)
        if i % 500 == 0:
            await asyncio.sleep(0)
    while writer.stats().written < len(batch):
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    await writer.aclose()
    await store.aclose()
    assert writer.stats().dropped == 0
    return len(batch) / elapsed


def docs_of(batch: list[Comparison]) -> list[dict[str, object]]:
    return [document.record_to_doc(document.to_record(c, 65536), binary=True)
            for c in batch if c.verdict in document.RECORDED]


def sqlite_reference(path: Path, batch: list[Comparison]) -> float:
    rows = [(d["_id"], d["at"], d["endpoint"], document.record_to_json(
        document.to_record(c, 65536))) for d, c in zip(docs_of(batch), (
            c for c in batch if c.verdict in document.RECORDED), strict=True)]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE r (id TEXT PRIMARY KEY, at REAL, endpoint TEXT, doc BLOB)")
    started = time.perf_counter()
    for start in range(0, len(rows), BATCH):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO r VALUES (?, ?, ?, ?)", rows[start:start + BATCH])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return len(batch) / elapsed


async def mongo_reference(url: str, batch: list[Comparison]) -> float:
    docs = docs_of(batch)
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url)
    coll = client.get_default_database().reference
    started = time.perf_counter()
    for start in range(0, len(docs), BATCH):
        await coll.insert_many(docs[start:start + BATCH], ordered=False)
    elapsed = time.perf_counter() - started
    await client.close()
    return len(batch) / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--mongo-records", type=int, default=6_000)
    args = parser.parse_args()
    print(f"# {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"# batch {BATCH}; records/s, higher is better; reference = plain bulk insert of the "
          "same records")
    print(f"{'engine':8} {'workload':15} {'records':>8} {'writer':>10} {'reference':>10} "
          f"{'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("all-mismatch", "production-mix"):
            batch = workload(kind, args.records)
            ours = await through_writer(f"sqlite:///{tmp}/{kind}.db", batch)
            ref = sqlite_reference(Path(tmp) / f"ref-{kind}.db", batch)
            print(f"{'sqlite':8} {kind:15} {len(batch):>8} {ours:>10.0f} {ref:>10.0f} "
                  f"{ours / ref:>6.2f}", flush=True)
        server = SecantusDBServer(host="127.0.0.1", port=0, storage_path=f"{tmp}/mongo",
                                  enable_test_commands=False)
        server.start()
        try:
            for kind in ("all-mismatch", "production-mix"):
                batch = workload(kind, args.mongo_records)
                url = f"mongodb://127.0.0.1:{server.port}/bench_{kind.replace('-', '_')}"
                ours = await through_writer(url, batch)
                ref = await mongo_reference(url, batch)
                print(f"{'mongodb':8} {kind:15} {len(batch):>8} {ours:>10.0f} {ref:>10.0f} "
                      f"{ours / ref:>6.2f}", flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
