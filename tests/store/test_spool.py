"""The disk spool: ordered, durable, capped, and tolerant of a torn last line."""

from __future__ import annotations

from pathlib import Path

from shadowproxy.store.spool import Spool
from tests.factories import make_batch


def drain(spool: Spool, limit: int = 7) -> list[str]:
    ids: list[str] = []
    while spool:
        read = spool.read(limit)
        ids += [c.exchange.id for c in read.records]
        spool.consume(read)
    return ids


def test_records_come_back_in_order_across_segments(tmp_path: Path) -> None:
    """Appended comparisons are read back oldest first, equal to what went in, and the files
    are gone once everything is consumed."""
    spool = Spool(tmp_path, max_bytes=10 << 20, segment_bytes=8192)
    batch = make_batch(40)
    for start in range(0, 40, 5):
        assert 5 == spool.append(batch[start : start + 5])
    assert len(list(tmp_path.iterdir())) > 1

    first = spool.read(3)

    assert list(batch[:3]) == list(first.records)
    spool.consume(first)
    assert [c.exchange.id for c in batch[3:]] == drain(spool)
    assert (0, 0, []) == (spool.records, spool.bytes, list(tmp_path.iterdir()))


def test_the_cap_refuses_what_does_not_fit(tmp_path: Path) -> None:
    """Past max_bytes, append accepts only what fits and says how many."""
    spool = Spool(tmp_path, max_bytes=12_000)
    accepted = spool.append(make_batch(50))

    assert 0 < accepted < 50
    assert spool.bytes <= 12_000
    assert accepted == spool.records
    assert 0 == spool.append(make_batch(5))


def test_a_new_process_finds_the_spool_and_skips_a_torn_line(tmp_path: Path) -> None:
    """Reopened after a crash that cut the last line, the spool replays the whole records and
    skips the torn one; new records go to a fresh segment."""
    batch = make_batch(6)
    Spool(tmp_path, max_bytes=1 << 20).append(batch[:5])
    [segment] = list(tmp_path.iterdir())
    data = segment.read_bytes()
    segment.write_bytes(data[: len(data) - 40])

    reopened = Spool(tmp_path, max_bytes=1 << 20)
    reopened.append(batch[5:])

    assert [c.exchange.id for c in batch[:4]] + [batch[5].exchange.id] == drain(reopened)
    assert 1 == reopened.corrupt


def test_a_flipped_byte_is_caught_by_the_checksum(tmp_path: Path) -> None:
    """A record whose bytes changed on disk is skipped, not replayed wrong."""
    batch = make_batch(3)
    Spool(tmp_path, max_bytes=1 << 20).append(batch)
    [segment] = list(tmp_path.iterdir())
    lines = segment.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b"GET", b"PUT", 1)
    segment.write_bytes(b"\n".join(lines))

    reopened = Spool(tmp_path, max_bytes=1 << 20)

    assert [batch[0].exchange.id, batch[2].exchange.id] == drain(reopened)
    assert 1 == reopened.corrupt


def test_processes_sharing_a_directory_get_their_own_slots(tmp_path: Path) -> None:
    """Two live spools under one --spool-dir never share files."""
    first = Spool.claim(tmp_path, max_bytes=1 << 20)
    second = Spool.claim(tmp_path, max_bytes=1 << 20)

    assert first.directory != second.directory
    first.close()
    second.close()


def test_a_slot_nobody_holds_is_adopted(tmp_path: Path) -> None:
    """When fewer processes come back, the first one takes over the idle slots' records."""
    batches = [make_batch(3), make_batch(4)]
    spools = [Spool.claim(tmp_path, max_bytes=1 << 20) for _ in batches]
    for spool, batch in zip(spools, batches, strict=True):
        spool.append(batch)
        spool.close()

    survivor = Spool.claim(tmp_path, max_bytes=1 << 20)

    assert [c.exchange.id for c in batches[0] + batches[1]] == drain(survivor)
    assert [] == list((tmp_path / "slot-01").glob("*.spool"))
    survivor.close()
