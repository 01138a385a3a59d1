"""The disk spool: an append-only, fsync'd, size-capped queue of comparisons waiting for the store.

Layout: numbered segment files (``000000000001.spool``...) in one directory. Each line is
``<crc32 as 8 hex digits> <comparison as JSON>\\n``; a line whose checksum does not match (a torn
write at a crash) is skipped and counted as corrupt. Records are read from the oldest segment and
a segment is deleted once everything in it was written to the store. The read position is kept
in memory only: after a crash the head segment is replayed from its start, which is harmless
because store writes are idempotent by exchange id.

Several serving processes (``--workers N``) may share one ``--spool-dir``: :meth:`Spool.claim`
gives each a slot directory of its own (``slot-00``, ``slot-01``...) held with an exclusive
``flock``, and hands it the spooled data of slots no live process holds, so nothing is stranded
when the number of processes shrinks.

All methods do blocking file I/O: call them from a worker thread (the writer does).
"""

from __future__ import annotations

import fcntl
import logging
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shadowproxy.model import Comparison
from shadowproxy.store.codec import CodecError, decode_comparison, encode_comparison

log = logging.getLogger(__name__)

_SUFFIX = ".spool"
_SLOTS = 64


@dataclass(frozen=True, slots=True)
class SpoolRead:
    """Records read from the head of the spool; pass to :meth:`Spool.consume` once written."""

    records: tuple[Comparison, ...]
    segment: Path | None
    end: int
    """Offset in ``segment`` just past the last line read."""
    nbytes: int
    lines: int


class Spool:
    """See the module docstring."""

    def __init__(self, directory: Path, max_bytes: int, *, segment_bytes: int = 4 << 20) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._segment_bytes = max(4096, min(segment_bytes, max_bytes // 4 or 4096))
        directory.mkdir(parents=True, exist_ok=True)
        self._segments = sorted(directory.glob("*" + _SUFFIX))
        self._head_offset = 0
        self.bytes = sum(p.stat().st_size for p in self._segments)
        self.records = sum(_count_lines(p) for p in self._segments)
        self._reopened = bool(self._segments)
        self._lock_fd: int | None = None
        self.corrupt = 0
        """Lines skipped because their checksum or content was bad."""

    @classmethod
    def claim(cls, root: Path, max_bytes: int) -> Spool:
        """This process's spool under ``root``: the first slot no other process holds, with the
        segments of every other unheld slot moved into it (oldest slot first)."""
        root.mkdir(parents=True, exist_ok=True)
        held: list[tuple[Path, int]] = []
        mine: tuple[Path, int] | None = None
        try:
            for n in range(_SLOTS):
                directory = root / f"slot-{n:02d}"
                directory.mkdir(exist_ok=True)
                fd = _try_lock(directory / "lock")
                if fd is None:
                    continue
                if mine is None:
                    mine = (directory, fd)
                elif any(directory.glob("*" + _SUFFIX)):
                    held.append((directory, fd))
                else:
                    os.close(fd)
            if mine is None:
                raise OSError(f"all {_SLOTS} spool slots under {root} are held by other processes")
            _adopt(mine[0], [directory for directory, _ in held])
        finally:
            for _, fd in held:
                os.close(fd)
        spool = cls(mine[0], max_bytes)
        spool._lock_fd = mine[1]
        return spool

    def close(self) -> None:
        """Release the slot (the data stays for the next process)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __bool__(self) -> bool:
        return bool(self._segments)

    def _next_segment(self) -> Path:
        number = int(self._segments[-1].stem) + 1 if self._segments else 1
        path = self.directory / f"{number:012d}{_SUFFIX}"
        self._segments.append(path)
        return path

    def append(self, comparisons: Sequence[Comparison]) -> int:
        """Append as many as fit under the cap, fsync; return how many were accepted."""
        lines: list[bytes] = []
        size = self.bytes
        for comparison in comparisons:
            payload = encode_comparison(comparison)
            line = b"%08x %s\n" % (zlib.crc32(payload), payload)
            if size + len(line) > self.max_bytes:
                break
            size += len(line)
            lines.append(line)
        if not lines:
            return 0
        if not self._segments or self._reopened:
            # Never append to a segment a crash may have left with a torn last line.
            self._reopened = False
            tail = self._next_segment()
        else:
            tail = self._segments[-1]
            if tail.exists() and tail.stat().st_size >= self._segment_bytes:
                tail = self._next_segment()
        fresh = not tail.exists()
        with tail.open("ab") as handle:
            handle.write(b"".join(lines))
            handle.flush()
            os.fsync(handle.fileno())
        if fresh:
            _fsync_dir(self.directory)
        self.bytes = size
        self.records += len(lines)
        return len(lines)

    def read(self, limit: int) -> SpoolRead:
        """Up to ``limit`` records from the head segment (fewer at its end); consumes nothing."""
        if not self._segments:
            return SpoolRead((), None, 0, 0, 0)
        segment = self._segments[0]
        records: list[Comparison] = []
        lines = 0
        with segment.open("rb") as handle:
            handle.seek(self._head_offset)
            offset = self._head_offset
            while len(records) < limit:
                line = handle.readline()
                if not line:
                    break
                offset += len(line)
                lines += 1
                comparison = self._parse(line, segment)
                if comparison is not None:
                    records.append(comparison)
        return SpoolRead(tuple(records), segment, offset, offset - self._head_offset, lines)

    def _parse(self, line: bytes, segment: Path) -> Comparison | None:
        crc, _, payload = line.rstrip(b"\n").partition(b" ")
        try:
            if not line.endswith(b"\n") or int(crc, 16) != zlib.crc32(payload):
                raise CodecError("checksum mismatch or torn line")
            return decode_comparison(payload)
        except (ValueError, CodecError) as exc:
            self.corrupt += 1
            log.warning("spool %s: skipping a bad record: %s", segment.name, exc)
            return None

    def consume(self, done: SpoolRead) -> None:
        """Forget what ``done`` read (it is in the store); delete segments read to the end."""
        if done.segment is None or not self._segments or self._segments[0] != done.segment:
            return
        self._head_offset = done.end
        self.bytes -= done.nbytes
        self.records = max(0, self.records - done.lines)
        if done.end >= done.segment.stat().st_size:
            done.segment.unlink(missing_ok=True)
            self._segments.pop(0)
            self._head_offset = 0
        if not self._segments:
            self.bytes = self.records = 0


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _adopt(directory: Path, orphans: list[Path]) -> None:
    """Move orphaned slots' segments after this slot's own, keeping each slot's order."""
    mine = sorted(directory.glob("*" + _SUFFIX))
    number = int(mine[-1].stem) if mine else 0
    moved = False
    for orphan in orphans:
        for segment in sorted(orphan.glob("*" + _SUFFIX)):
            number += 1
            segment.rename(directory / f"{number:012d}{_SUFFIX}")
            moved = True
    if moved:
        log.info("spool: adopted the segments of %d idle slot(s)", len(orphans))
        _fsync_dir(directory)
