"""The comparator processes and the loop-driven socket to each.

The serving process writes batches of jobs to a socket the event loop watches and reads the
comparisons back the same way: no executor threads, no per-job futex dance between them and the
loop. Each process reads a batch, compares and redacts every job, and answers with one frame, in
order; the wire framing is ``multiprocessing.connection``'s, so the child side is a plain blocking
``Connection``. An endpoint's rules are sent to a process once, then named by a number: pickling
them costs ten times what pickling a small exchange does.

Comparator processes run on what the serving processes leave: Linux's ``SCHED_IDLE`` class where
it exists (else a lower priority, ``NICENESS``). When the machine is short of cores the serving
processes win and comparisons are shed instead, so clients never feel them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import socket
import struct
import traceback
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext, SpawnProcess

from shadowproxy.memory import Trimmer
from shadowproxy.model import Comparison, Exchange
from shadowproxy.rules import EndpointRules
from shadowproxy.store.document import RECORDED
from shadowproxy.store.redaction import RedactionPolicy
from shadowproxy.store.writer import without_bodies
from shadowproxy.tasks import TaskSet

NICENESS = 10
"""Added to a comparator's nice value: under CPU contention, serving comes first. Where Linux
offers ``SCHED_IDLE`` the process also moves to it: a niced process still wakes up in front of a
serving process that was running and takes a tenth of a shared core, which put a 1-connection
run's p99 at 1.43 ms; an idle-class one only takes time nothing else wants (0.86 ms, the same
comparisons at moderate load, fewer at saturation)."""

_LENGTH = struct.Struct("!i")
_LONG_LENGTH = struct.Struct("!Q")


@dataclass(frozen=True, slots=True)
class Job:
    """What a comparator process needs for one exchange."""

    exchange: Exchange
    rules: EndpointRules
    ruleset_version: str
    size: int = 0
    """Body bytes the exchange holds, for the queue's byte budget."""


@dataclass(frozen=True, slots=True)
class Failure:
    """A job the comparator could not compare: the traceback, for the serving process's log."""

    detail: str


def compare_and_redact(job: Job, policy: RedactionPolicy) -> Comparison:
    """The verdict, then redaction before anything leaves the comparator. A comparison that is
    only counted (a match, a skip) leaves without its bodies: nobody stores them."""
    from shadowproxy.compare.comparator import compare
    from shadowproxy.store.redaction import redact_comparison

    comparison = compare(job.exchange, job.rules, job.ruleset_version)
    if comparison.verdict not in RECORDED:
        comparison = without_bodies(comparison)
    return redact_comparison(comparison, policy, job.rules.redact)


RULES_KEPT = 1024
"""Rule objects a process keeps by number; past it both sides start over (reloads add more)."""


@dataclass(frozen=True, slots=True)
class Batch:
    """One frame to a comparator: rules it has not seen yet, then the jobs."""

    forget: bool
    """Drop the rules kept so far (before ``rules`` are added)."""
    rules: tuple[tuple[int, EndpointRules], ...]
    jobs: tuple[tuple[Exchange, int, str], ...]
    """Exchange, the number of its rules, ruleset version."""


def serve(conn: Connection, policy: RedactionPolicy, niceness: int) -> None:
    """A comparator process's whole life: batches in, results out, until the socket closes."""
    # Ctrl-C reaches the whole process group; the serving process decides when this one ends
    # (by closing the socket), so it is not interrupted mid-batch.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if niceness:
        os.nice(niceness)
        with contextlib.suppress(AttributeError, OSError):  # not Linux
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    trimmer = Trimmer()
    kept: dict[int, EndpointRules] = {}
    while True:
        try:
            # The peer is our own serving process, over a socketpair nobody else holds.
            batch: Batch = pickle.loads(conn.recv_bytes())  # noqa: S301
        except EOFError:
            return  # the serving process closed its end, or is gone
        if batch.forget:
            kept.clear()
        kept.update(batch.rules)
        results: list[Comparison | Failure] = []
        for exchange, number, version in batch.jobs:
            try:
                results.append(compare_and_redact(Job(exchange, kept[number], version), policy))
            except Exception:
                results.append(Failure(traceback.format_exc()))
        try:
            conn.send_bytes(pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            return  # the serving process stopped waiting (shut down mid-batch)
        trimmer.maybe()


class ComparatorGoneError(Exception):
    """The comparator process died; the batches it held are lost."""


class ComparatorProcess:
    """One comparator process. :meth:`compare` may be called again before earlier batches are
    answered: the process answers in order, so the next batch waits in its socket, not here."""

    def __init__(
        self, process: SpawnProcess, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.process = process
        self._reader = reader
        self._writer = writer
        self._waiting: deque[asyncio.Future[list[Comparison | Failure]]] = deque()
        self._gone = False
        self._rules: dict[int, tuple[EndpointRules, int]] = {}
        """id() of rules the process keeps → (the rules, kept alive so the id stays theirs;
        their number)."""
        self._tasks = TaskSet("comparator-receive")
        self._tasks.spawn(self._receive())

    @classmethod
    async def spawn(cls, context: SpawnContext, policy: RedactionPolicy) -> ComparatorProcess:
        ours, theirs = context.Pipe(duplex=True)
        process = context.Process(
            target=serve,
            args=(theirs, policy, NICENESS),
            name="shadowproxy-comparator",
            daemon=True,
        )
        process.start()
        theirs.close()
        sock = socket.socket(fileno=os.dup(ours.fileno()))
        ours.close()
        reader, writer = await asyncio.open_connection(sock=sock)
        return cls(process, reader, writer)

    @property
    def gone(self) -> bool:
        return self._gone

    async def compare(self, jobs: Sequence[Job]) -> list[Comparison | Failure]:
        """One result per job, in order; raises :class:`ComparatorGoneError` if the process dies."""
        if self._gone:
            raise ComparatorGoneError
        batch, kept = self._batch(jobs)
        payload = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
        if len(payload) > 0x7FFFFFFF:
            header = _LENGTH.pack(-1) + _LONG_LENGTH.pack(len(payload))
        else:
            header = _LENGTH.pack(len(payload))
        answer: asyncio.Future[list[Comparison | Failure]] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting.append(answer)
        self._writer.writelines((header, payload))
        self._rules = kept  # the frame is on its way: the process will know these
        try:
            await self._writer.drain()
        except OSError:
            self._fail()
        return await answer

    def _batch(self, jobs: Sequence[Job]) -> tuple[Batch, dict[int, tuple[EndpointRules, int]]]:
        """The frame for ``jobs``, and what the process will keep once it has read it."""
        forget = len(self._rules) + len(jobs) > RULES_KEPT
        kept = {} if forget else dict(self._rules)
        new: list[tuple[int, EndpointRules]] = []
        numbered = []
        for job in jobs:
            known = kept.get(id(job.rules))
            if known is None:
                known = kept[id(job.rules)] = (job.rules, len(kept))
                new.append((known[1], job.rules))
            numbered.append((job.exchange, known[1], job.ruleset_version))
        return Batch(forget, tuple(new), tuple(numbered)), kept

    async def _receive(self) -> None:
        try:
            while True:
                size = _LENGTH.unpack(await self._reader.readexactly(_LENGTH.size))[0]
                if size == -1:
                    size = _LONG_LENGTH.unpack(await self._reader.readexactly(_LONG_LENGTH.size))[0]
                payload = await self._reader.readexactly(size)
                results = pickle.loads(payload)  # noqa: S301 - our own child, a private socket
                answer = self._waiting.popleft()
                if not answer.done():
                    answer.set_result(results)
        except (asyncio.IncompleteReadError, OSError):
            self._fail()

    def _fail(self) -> None:
        self._gone = True
        while self._waiting:
            answer = self._waiting.popleft()
            if not answer.done():
                answer.set_exception(ComparatorGoneError())

    async def aclose(self, timeout: float) -> None:
        """Close the socket (the process exits at the end of its input) and reap the process."""
        self._writer.close()
        if not await self._exited(timeout):
            self.process.kill()
            await self._exited(1.0)
        await self._tasks.aclose()
        self._fail()

    async def _exited(self, timeout: float) -> bool:
        # The process sentinel turns readable when it exits: waited on by the loop, no thread.
        loop = asyncio.get_running_loop()
        exited = loop.create_future()
        sentinel = self.process.sentinel

        def on_exit() -> None:
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(sentinel, on_exit)
        try:
            await asyncio.wait_for(exited, timeout)
        except TimeoutError:
            return False
        finally:
            loop.remove_reader(sentinel)
        self.process.join(0)  # reap
        return True
