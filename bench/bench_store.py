"""Sustained batched write throughput of the store, SQLite and MongoDB, in records per second.

Run by hand:  .venv/bin/python bench/bench_store.py [--records N] [--mongo-records N]

For each engine it measures, in the same run:

- ``writer``: comparisons submitted to a :class:`StoreWriter` as fast as the loop allows, until
  the last one is in the store (batching, counting, grouping, record building, the engine);
- ``reference``: the same number of already-serialised record documents inserted with the
  engine's plainest bulk call (sqlite3 ``executemany`` in one transaction per batch; PyMongo
  ``insert_many``): the floor any store design pays for that engine on this machine.

Two workloads, both over 8 endpoints and 40 mismatch groups: ``all-mismatch`` (every comparison a
mismatch, each stored in full: the worst case) and ``production-mix`` (90 % match, 8 % mismatch,
2 % shadow error).
MongoDB is secantusdb (``secantusd-py``) in its own process: a MongoDB-wire server written in
Python, far slower per document than mongod, so its figures are a lower bound.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pymongo import AsyncMongoClient

from shadowproxy.model import Comparison, Difference, DiffKind, Verdict
from shadowproxy.store import document, open_store
from shadowproxy.store.writer import StoreWriter
from tests.factories import make_comparison, make_response, title_document


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
            verdict = (
                Verdict.MATCH
                if roll < 0.90
                else Verdict.MISMATCH
                if roll < 0.98
                else Verdict.SHADOW_ERROR
            )
        group = rng.randrange(40)
        diffs = (
            Difference("/rating", "/rating", DiffKind.VALUE, 8.7, 8.69),
            Difference(f"/list/{group}/id", f"/list/*/f{group}", DiffKind.TYPE, group, str(group)),
        )
        out.append(
            make_comparison(
                id=f"{kind[:3]}{i:09d}",
                endpoint=f"GET /api/v1/title/{{id}}#{group % 8}",
                verdict=verdict,
                received_at=at,
                primary=primary,
                shadow=shadow if verdict is Verdict.MISMATCH else None,
                differences=diffs if verdict is Verdict.MISMATCH else (),
                fingerprint=f"fp{group}",
            )
        )
    return out


async def through_writer(url: str, batch: list[Comparison], size: int) -> float:
    """Records/s from the first submit until the writer has flushed the last one."""
    store = open_store(url, group_store_per_hour=1_000_000)
    await store.aopen()
    writer = StoreWriter(store, batch=size, flush_interval=0.05, buffer=len(batch) + 1)
    await writer.start()
    started = time.perf_counter()
    for i, comparison in enumerate(batch):
        writer.submit(comparison)
        if i % 500 == 0:
            await asyncio.sleep(0)
    await writer.aclose(deadline=600)
    elapsed = time.perf_counter() - started
    await store.aclose()
    stats = writer.stats()
    assert (stats.written, stats.dropped) == (len(batch), 0), stats
    return len(batch) / elapsed


def docs_of(batch: list[Comparison]) -> list[dict[str, object]]:
    return [
        document.record_to_doc(document.to_record(c, 65536), binary=True)
        for c in batch
        if c.verdict in document.RECORDED
    ]


def sqlite_reference(path: Path, batch: list[Comparison], size: int) -> float:
    rows = [
        (d["_id"], d["at"], d["endpoint"], document.record_to_json(document.to_record(c, 65536)))
        for d, c in zip(
            docs_of(batch), (c for c in batch if c.verdict in document.RECORDED), strict=True
        )
    ]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE r (id TEXT PRIMARY KEY, at REAL, endpoint TEXT, doc BLOB)")
    started = time.perf_counter()
    for start in range(0, len(rows), size):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO r VALUES (?, ?, ?, ?)", rows[start : start + size])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return len(batch) / elapsed


async def mongo_reference(url: str, batch: list[Comparison], size: int) -> float:
    docs = docs_of(batch)
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url)
    coll = client.get_default_database().reference
    started = time.perf_counter()
    for start in range(0, len(docs), size):
        await coll.insert_many(docs[start : start + size], ordered=False)
    elapsed = time.perf_counter() - started
    await client.close()
    return len(batch) / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--mongo-records", type=int, default=3_000)
    parser.add_argument("--batches", default="200,1000", help="writer batch sizes to try")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per row, alternating writer and reference; best of each",
    )
    args = parser.parse_args()
    sizes = [int(b) for b in args.batches.split(",")]
    print(f"# {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(
        f"# comparisons/s, best of {args.repeat}, higher is better; reference = plain bulk "
        "insert of the same stored records; ratio = writer / reference"
    )
    print(
        f"{'engine':8} {'workload':15} {'batch':>5} {'records':>8} {'writer':>8} "
        f"{'reference':>10} {'ratio':>6}"
    )

    def row(engine: str, kind: str, size: int, count: int, ours: float, ref: float) -> None:
        print(
            f"{engine:8} {kind:15} {size:>5} {count:>8} {ours:>8.0f} {ref:>10.0f} "
            f"{ours / ref:>6.2f}",
            flush=True,
        )

    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            for kind in ("all-mismatch", "production-mix"):
                batch = workload(kind, args.records)
                ours = ref = 0.0
                for n in range(args.repeat):
                    ours = max(
                        ours,
                        await through_writer(f"sqlite:///{tmp}/{kind}-{size}-{n}.db", batch, size),
                    )
                    ref = max(
                        ref, sqlite_reference(Path(tmp) / f"ref-{kind}-{size}-{n}.db", batch, size)
                    )
                row("sqlite", kind, size, len(batch), ours, ref)
        port = free_port()
        server = start_server(port, f"{tmp}/mongo")
        try:
            wait_for_port(port)
            for size in sizes:
                for kind in ("all-mismatch", "production-mix"):
                    batch = workload(kind, args.mongo_records)
                    ours = ref = 0.0
                    for n in range(args.repeat):
                        url = f"mongodb://127.0.0.1:{port}/b_{kind[:3]}_{size}_{n}"
                        ours = max(ours, await through_writer(url, batch, size))
                        ref = max(ref, await mongo_reference(url, batch, size))
                    row("mongodb", kind, size, len(batch), ours, ref)
        finally:
            server.terminate()
            server.wait(timeout=30)


def start_server(port: int, storage: str) -> subprocess.Popen[bytes]:
    """secantusd-py in its own process, so it does not share the benchmark's GIL."""
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "secantusd-py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            storage,
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


if __name__ == "__main__":
    asyncio.run(main())
