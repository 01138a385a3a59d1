"""The batched writer: never blocks the pipeline, survives a down or slow store, loses nothing
it has room for, and says what it dropped."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from shadowproxy.model import Verdict
from shadowproxy.store import open_store
from shadowproxy.store.contract import Store, StoreError
from shadowproxy.store.writer import StoreWriter
from tests.factories import make_comparison, make_response
from tests.polling import eventually
from tests.store.conftest import start_mongo

NOW = time.time() // 60 * 60 + 1.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def total_compared(store: Store) -> int:
    return sum(s.compared for s in await store.summary())


async def test_writes_everything_submitted_in_batches(tmp_path: Path) -> None:
    """Submitted comparisons reach the store; aclose flushes the rest."""
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    writer = StoreWriter(store, batch=50, flush_interval=0.05)
    await writer.start()

    accepted = [
        writer.submit(make_comparison(verdict=Verdict.MATCH, received_at=NOW)) for _ in range(420)
    ]
    await writer.aclose()

    assert [True] * 420 == accepted
    assert 420 == await total_compared(store)
    stats = writer.stats()
    assert (420, 0, 0, 0, True) == (
        stats.written,
        stats.buffered,
        stats.dropped,
        stats.errors,
        stats.store_up,
    )
    await store.aclose()


async def test_matches_are_buffered_without_bodies(tmp_path: Path) -> None:
    """Bodies of comparisons that are only counted never sit in the buffer or the spool."""
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    writer = StoreWriter(store, flush_interval=60, spool_dir=tmp_path / "spool")
    match = make_comparison(verdict=Verdict.MATCH)
    mismatch = make_comparison()

    writer.submit(match)
    writer.submit(mismatch)
    await writer.aclose()

    spooled = b"".join(p.read_bytes() for p in (tmp_path / "spool").rglob("*.spool"))
    assert 2 == spooled.count(b"\n")
    assert 1 == spooled.count(b"Your Name") + spooled.count(b"H4sI")  # only the mismatch's bodies
    await store.aclose()


async def test_store_down_at_startup_is_retried_until_it_comes_up() -> None:
    """A store unreachable at start-up: the writer keeps accepting, then writes all of it."""
    port = free_port()
    store = open_store(f"mongodb://127.0.0.1:{port}/late?serverSelectionTimeoutMS=300")
    writer = StoreWriter(store, batch=20, flush_interval=0.05)
    await writer.start()
    batch = [make_comparison(received_at=NOW, fingerprint=f"g{i}") for i in range(60)]
    assert [True] * 60 == [writer.submit(c) for c in batch]
    await eventually(lambda: writer.stats().errors > 0)
    assert not writer.stats().store_up
    assert writer.stats().last_error.startswith("StoreError: mongodb open")

    server = start_mongo(port=port)
    try:
        await eventually(lambda: writer.stats().written == 60)
        assert writer.stats().store_up
        assert 60 == await total_compared(store)
        assert 60 == len((await store.mismatches(limit=100)).items)
        await writer.aclose()
        await store.aclose()
    finally:
        server.stop()


def lock_database(path: Path) -> sqlite3.Connection:
    """Another connection holding the write lock: the store is "slow" until it lets go."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    return conn


async def test_a_slow_store_spills_to_the_spool_and_replays_in_order(tmp_path: Path) -> None:
    """While the store is locked, the buffer spills to disk; afterwards all is written once."""
    db = tmp_path / "s.db"
    store = open_store(f"sqlite:///{db}")
    await store.aopen()
    lock = lock_database(db)
    # The buffer leaves room for a slow fsync on a busy machine; half of it spills.
    writer = StoreWriter(
        store, batch=10, flush_interval=0.05, buffer=120, spool_dir=tmp_path / "spool"
    )
    await writer.start()
    batch = [make_comparison(id=f"c{i:04d}", received_at=NOW + i / 100) for i in range(300)]

    accepted = 0
    for comparison in batch:
        accepted += writer.submit(comparison)
        await asyncio.sleep(0.002)
    await eventually(lambda: writer.stats().spooled_records > 0)
    lock.rollback()
    lock.close()
    await eventually(lambda: writer.stats().written >= accepted and not writer.stats().buffered)
    await writer.aclose()

    assert 0 == writer.stats().dropped
    assert 300 == accepted
    assert 300 == await total_compared(store)
    page = await store.mismatches(limit=1000, fingerprint=None)
    assert 50 == len(page.items)  # the group's hourly quota; the rest only counted
    [group] = (await store.groups()).items
    assert 300 == group.count
    assert ["c0000", "c0001", "c0002", "c0003", "c0004"] == list(group.example_ids)
    assert (0, 0) == (writer.stats().spooled_records, writer.stats().spooled_bytes)
    await store.aclose()


async def test_a_batch_the_store_refused_is_spooled_with_the_buffer(tmp_path: Path) -> None:
    """The store dies with a whole batch taken from the buffer for writing: that batch counts
    toward the spill and goes to the spool first, so the outage's records are on disk, not
    only in memory until the store returns; afterwards each is written once."""
    port = free_port()
    server = start_mongo(port=port)
    store = open_store(f"mongodb://127.0.0.1:{port}/gone?serverSelectionTimeoutMS=300")
    writer = StoreWriter(
        store, batch=200, flush_interval=0.05, buffer=10, spool_dir=tmp_path / "spool"
    )
    await writer.start()
    try:
        writer.submit(make_comparison(id="c0", received_at=NOW))
        await eventually(lambda: writer.stats().written == 1)
        server.stop()
        # At once: the next flush takes all eight as one batch, past half the buffer.
        for i in range(1, 9):
            assert writer.submit(make_comparison(id=f"c{i}", received_at=NOW + i))
        await eventually(lambda: writer.stats().spooled_records == 8, describe=writer.stats)
        assert 0 == writer.stats().buffered
        server = start_mongo(port=port)
        await eventually(lambda: writer.stats().written == 9, 30, writer.stats)
        assert (0, 0) == (writer.stats().spooled_records, writer.stats().dropped)
        ids = {item.id for item in (await store.mismatches(limit=100)).items}
        assert {f"c{i}" for i in range(1, 9)} == ids  # the restarted server started empty
    finally:
        await writer.aclose(deadline=0.5)
        await store.aclose()
        server.stop()


async def test_past_the_spool_cap_records_are_dropped_and_counted(tmp_path: Path) -> None:
    """With the store down and the spool full, submit says False and counts the drop."""
    store = open_store(f"mongodb://127.0.0.1:{free_port()}/x?serverSelectionTimeoutMS=200")
    writer = StoreWriter(
        store,
        batch=10,
        flush_interval=0.02,
        buffer=20,
        spool_dir=tmp_path / "spool",
        spool_max_bytes=40_000,
    )
    await writer.start()

    results = []
    for _ in range(400):
        results.append(writer.submit(make_comparison()))
        await asyncio.sleep(0.001)
    stats = writer.stats()

    assert results.count(False) == stats.dropped > 0
    assert 0 < stats.spooled_bytes <= 40_000
    assert 400 == stats.dropped + stats.spooled_records + stats.buffered
    await writer.aclose(deadline=0.5)
    assert 400 == writer.stats().dropped + writer.stats().spooled_records
    await store.aclose()


async def test_the_spool_outlives_the_process(tmp_path: Path) -> None:
    """What could not be written before shutdown is spooled, and the next writer replays it."""
    spool = tmp_path / "spool"
    down = open_store(f"mongodb://127.0.0.1:{free_port()}/x?serverSelectionTimeoutMS=200")
    first = StoreWriter(down, flush_interval=0.05, spool_dir=spool)
    await first.start()
    batch = [make_comparison(received_at=NOW, fingerprint=f"g{i}") for i in range(30)]
    for comparison in batch:
        first.submit(comparison)
    await first.aclose(deadline=0.3)
    await down.aclose()
    assert (0, 30) == (first.stats().dropped, first.stats().spooled_records)

    store = open_store(f"sqlite:///{tmp_path}/s.db")
    second = StoreWriter(store, flush_interval=0.05, spool_dir=spool)
    await second.start()
    assert 30 == second.stats().spooled_records
    await eventually(lambda: second.stats().written == 30)
    await second.aclose()

    assert {c.exchange.id for c in batch} == {
        r.id for r in (await store.mismatches(limit=100)).items
    }
    assert [] == list(spool.rglob("*.spool"))
    await store.aclose()


async def test_without_a_spool_unwritten_records_are_counted_lost(tmp_path: Path) -> None:
    """No spool and a dead store: aclose gives up at its deadline and counts what it lost."""
    store = open_store(f"mongodb://127.0.0.1:{free_port()}/x?serverSelectionTimeoutMS=200")
    writer = StoreWriter(store, flush_interval=0.05)
    await writer.start()
    for _ in range(25):
        writer.submit(make_comparison())

    started = time.monotonic()
    await writer.aclose(deadline=0.5)

    assert time.monotonic() - started < 5.0
    assert (25, 0, 0) == (writer.stats().dropped, writer.stats().buffered, writer.stats().written)
    assert not writer.submit(make_comparison())
    await store.aclose()


async def test_bodies_are_cut_at_the_cap_as_they_are_submitted(tmp_path: Path) -> None:
    """A huge mismatch body is cut on submit (bounded memory) and stored marked truncated."""
    store = open_store(f"sqlite:///{tmp_path}/s.db", body_max=1 << 20)
    writer = StoreWriter(store, flush_interval=0.05, body_cap=1000)
    await writer.start()
    huge = make_response(body=b'{"list": [' + b'"x", ' * 100_000 + b'"y"]}', elapsed=0.1)
    comparison = make_comparison(primary=huge)

    assert writer.submit(comparison)
    await writer.aclose()

    record = await store.mismatch(comparison.exchange.id)
    assert record is not None
    assert (1000, True) == (len(record.primary.body), record.primary.truncated)
    assert (False, b"") != (record.shadow.truncated, record.shadow.body)
    await store.aclose()


async def test_submit_never_raises(tmp_path: Path) -> None:
    """Something that is not a comparison is counted as dropped, not raised into the pipeline."""
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    writer = StoreWriter(store)

    assert not writer.submit(None)  # type: ignore[arg-type]
    assert 1 == writer.stats().dropped
    await writer.aclose()


async def test_an_sqlite_file_that_cannot_open_fails_start_up(tmp_path: Path) -> None:
    """A path under a regular file is a configuration error, reported at start, not later."""
    (tmp_path / "file").write_text("not a directory")
    store = open_store(f"sqlite:///{tmp_path}/file/s.db")
    writer = StoreWriter(store)

    with pytest.raises(StoreError, match="file"):
        await writer.start()


async def test_an_unusable_spool_dir_fails_start_up(tmp_path: Path) -> None:
    """The spool directory must be creatable: say which option is wrong."""
    (tmp_path / "file").write_text("not a directory")
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    writer = StoreWriter(store, spool_dir=tmp_path / "file" / "spool")

    with pytest.raises(StoreError, match="--spool-dir"):
        await writer.start()
    await store.aclose()
