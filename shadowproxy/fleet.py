"""``--workers N``: N serving processes on one traffic port, one admin listener for all of them.

::

    supervisor (this module)                         serving process × N (spawned)
    ├─ admin listener: /metrics = sum of the N  ◄──  ├─ traffic listener, same port (SO_REUSEPORT)
    │                  /healthz, API, dashboard      ├─ its own pipeline, comparator, store writer
    └─ restarts a serving process that dies          └─ a private admin listener on 127.0.0.1:0

The kernel spreads connections over the N listening sockets. Each serving process is a complete
single-process proxy (the same code as ``--workers 1``), so the hot path has no cross-process hop;
only metrics and health are gathered, at scrape time, over each process's private admin port.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from shadowproxy.settings import HostPort, Settings

log = logging.getLogger(__name__)

_RESTART_DELAY = 1.0


@dataclass(slots=True)
class Member:
    """One serving process, as the supervisor sees it."""

    index: int
    process: BaseProcess
    admin_url: str = ""
    restarts: int = 0


@dataclass(slots=True)
class Fleet:
    """The serving processes of one supervisor."""

    settings: Settings
    members: list[Member] = field(default_factory=list)

    @property
    def admin_urls(self) -> list[str]:
        return [m.admin_url for m in self.members if m.admin_url and m.process.is_alive()]


def member_settings(settings: Settings, port: int) -> Settings:
    """What a serving process runs with: the shared traffic port, a private admin port."""
    return replace(
        settings,
        workers=1,
        listen=HostPort(settings.listen.host, port),
        admin_listen=HostPort("127.0.0.1", 0),
        admin_token="",
    )


def resolve_port(where: HostPort) -> int:
    """A concrete port for ``where`` (port 0 picks a free one once, for all members)."""
    if where.port:
        return where.port
    family = socket.AF_INET6 if ":" in where.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        probe.bind((where.host, 0))
        port: int = probe.getsockname()[1]
        return port


def _member_main(settings: Settings, processes: int, report: Connection) -> None:
    """Entry point of a serving process (spawned: nothing inherited but its arguments)."""
    from shadowproxy.proxy.governor import serving_loop
    from shadowproxy.server import serve

    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s %(levelname)s [worker {os.getpid()}] %(name)s: %(message)s",
    )
    # Ctrl-C on a terminal reaches the whole process group; the supervisor decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with asyncio.Runner(loop_factory=serving_loop) as runner:
        runner.run(serve(settings, reuse_port=True, processes=processes, on_ready=report.send))


def _start_member(fleet: Fleet, index: int, port: int) -> tuple[Member, Connection]:
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(
        target=_member_main,
        args=(member_settings(fleet.settings, port), fleet.settings.workers, send),
        name=f"shadowproxy-worker-{index}",
        daemon=False,
    )
    process.start()
    send.close()
    return Member(index=index, process=process), receive


async def _await_ready(member: Member, receive: Connection, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    ready = await asyncio.wait_for(loop.run_in_executor(None, receive.recv), timeout)
    receive.close()
    member.admin_url = str(ready)


@asynccontextmanager
async def running_fleet(settings: Settings) -> AsyncIterator[tuple[Fleet, int]]:
    """Start ``settings.workers`` serving processes; stop them (SIGTERM, then wait) on exit."""
    fleet = Fleet(settings)
    port = resolve_port(settings.listen)
    try:
        started = [_start_member(fleet, index, port) for index in range(settings.workers)]
        fleet.members.extend(member for member, _ in started)
        await asyncio.gather(*(_await_ready(m, r) for m, r in started))
        yield fleet, port
    finally:
        await _stop_members(fleet)


async def _stop_members(fleet: Fleet, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    for member in fleet.members:
        if member.process.is_alive() and member.process.pid:
            os.kill(member.process.pid, signal.SIGTERM)
    for member in fleet.members:
        await loop.run_in_executor(None, member.process.join, timeout)
        if member.process.is_alive():
            log.error("worker %d did not stop in %.0f s; killing it", member.index, timeout)
            member.process.kill()
            await loop.run_in_executor(None, member.process.join, 5)


async def supervise(fleet: Fleet, port: int) -> None:
    """Restart serving processes that die, until cancelled."""
    while True:
        await asyncio.sleep(_RESTART_DELAY)
        for position, member in enumerate(fleet.members):
            if member.process.is_alive():
                continue
            log.error(
                "worker %d exited with code %s; starting a new one",
                member.index,
                member.process.exitcode,
            )
            fresh, receive = _start_member(fleet, member.index, port)
            fresh.restarts = member.restarts + 1
            fleet.members[position] = fresh
            try:
                await _await_ready(fresh, receive)
            except (TimeoutError, EOFError):
                log.error("worker %d did not come up; will retry", member.index)


def signal_members(fleet: Fleet, sig: signal.Signals) -> None:
    """Pass a signal on (SIGHUP: reload the rules everywhere)."""
    for member in fleet.members:
        if member.process.is_alive() and member.process.pid:
            os.kill(member.process.pid, sig)
