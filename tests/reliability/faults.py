"""Misbehaving backends for the fault matrix: each a real server on 127.0.0.1.

Faults that HTTP servers cannot produce (hanging, resetting mid-body, speaking garbage) are raw
asyncio servers; the rest (100 MB streamed, a drip, 500s, a lying Content-Encoding) are aiohttp
apps. Every fault answers on any path, so the same fault serves as primary or shadow.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import orjson
from aiohttp import web

TITLE = {
    "id": 9174,
    "code": "kimi-no-na-wa",
    "names": {"ru": "Твоё имя", "en": "Your Name"},
    "genres": ["Комедия", "Романтика"],
    "rating": 8.7,
}
TITLE_BYTES = orjson.dumps(TITLE)
HUGE_BYTES = 100 * 1024 * 1024
"""The '100 MB' fault: streamed from a generator, never held in memory."""
HUGE_CHUNK = b"\x5a" * (256 * 1024)
DRIP = b"[1,2]"
"""What the dripping backend sends, one byte a second: 4 s, longer than the shadow timeout."""
DRIP_INTERVAL = 1.0
GARBAGE = b"\x00\xff\x13\x37 NOT HTTP AT ALL \xfe\r\n\r\n"

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def healthy_app() -> web.Application:
    """The well-behaved backend: the same JSON title on every path."""

    async def title(request: web.Request) -> web.Response:
        return web.Response(body=TITLE_BYTES, content_type="application/json")

    return _catch_all(title)


def error_app() -> web.Application:
    """Answers 500 with a small error page."""

    async def fail(request: web.Request) -> web.Response:
        return web.Response(
            status=500, body=b'{"error":"internal"}', content_type="application/json"
        )

    return _catch_all(fail)


def lying_gzip_app() -> web.Application:
    """Says ``Content-Encoding: gzip`` and sends the plain JSON."""

    async def lie(request: web.Request) -> web.Response:
        return web.Response(
            body=TITLE_BYTES,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )

    return _catch_all(lie)


def huge_app() -> web.Application:
    """Streams 100 MB with a Content-Length, chunk by chunk (a generator, never in memory)."""

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(HUGE_BYTES)}
        )
        await response.prepare(request)
        try:
            for _ in range(HUGE_BYTES // len(HUGE_CHUNK)):
                await response.write(HUGE_CHUNK)
            await response.write_eof()
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            pass  # the reader stopped at its cap and hung up: expected for the shadow
        return response

    return _catch_all(huge)


def drip_app() -> web.Application:
    """Sends headers at once, then the body one byte a second."""

    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "application/json", "Content-Length": str(len(DRIP))}
        )
        await response.prepare(request)
        try:
            for index in range(len(DRIP)):
                await response.write(DRIP[index : index + 1])
                if index < len(DRIP) - 1:
                    await asyncio.sleep(DRIP_INTERVAL)
            await response.write_eof()
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            pass  # the proxy gave up on us: what a timeout looks like from here
        return response

    return _catch_all(drip)


def _catch_all(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


# --- raw servers ----------------------------------------------------------------------------------


async def _read_head(reader: asyncio.StreamReader) -> None:
    await reader.readuntil(b"\r\n\r\n")


async def hang_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads the request, then says nothing, forever (until the server closes)."""
    await _read_head(reader)
    await asyncio.Event().wait()


async def reset_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Headers and the start of a 1000-byte body, then a TCP reset."""
    await _read_head(reader)
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        b'{"id": 9174, "na'
    )
    await writer.drain()
    await asyncio.sleep(0.05)  # let the first bytes reach the reader before the reset
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # Linger 0: close sends RST instead of FIN, a real reset.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def garbage_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers bytes that are no HTTP at all, then closes."""
    await _read_head(reader)
    writer.write(GARBAGE)
    await writer.drain()
    writer.close()


@dataclass
class RawServer:
    """A raw TCP server; closing it aborts every connection still open (hanging ones too)."""

    url: str
    server: asyncio.Server
    writers: set[asyncio.StreamWriter]


@asynccontextmanager
async def raw_server(handler: RawHandler) -> AsyncIterator[RawServer]:
    writers: set[asyncio.StreamWriter] = set()
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        current = asyncio.current_task()
        if current is not None:
            tasks.add(current)
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writers.discard(writer)
            if current is not None:
                tasks.discard(current)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield RawServer(f"http://127.0.0.1:{port}", server, writers)
    finally:
        server.close()
        for writer in list(writers):
            writer.transport.abort()
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        await server.wait_closed()


@asynccontextmanager
async def refusing_url() -> AsyncIterator[str]:
    """A port bound but never listening: connections are refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


# --- measuring ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """What one client request got: status (0 when none), body bytes, error, seconds."""

    status: int
    body: bytes
    error: str
    seconds: float
    headers: tuple[tuple[str, str], ...] = ()
    first_byte: float = 0.0
    """Seconds until the first body byte (0 when none came)."""
    size: int = 0


async def timed_get(
    client: aiohttp.ClientSession, url: str, *, keep_body: bool = True, timeout: float = 30
) -> Seen:
    """GET ``url``; never raises for what the server did, says it in ``error`` instead."""
    started = time.perf_counter()
    status, chunks, size, first = 0, [], 0, 0.0
    headers: tuple[tuple[str, str], ...] = ()
    try:
        async with client.get(
            url, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False
        ) as response:
            status = response.status
            headers = tuple(response.headers.items())
            async for chunk in response.content.iter_any():
                if not first:
                    first = time.perf_counter() - started
                size += len(chunk)
                if keep_body:
                    chunks.append(chunk)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Seen(
            status,
            b"".join(chunks),
            type(exc).__name__,
            time.perf_counter() - started,
            headers,
            first,
            size,
        )
    return Seen(status, b"".join(chunks), "", time.perf_counter() - started, headers, first, size)


def sample(metrics_text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample (0.0 when absent); labels must match exactly."""
    for line in metrics_text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head == name and not labels:
            return float(value)
        if not head.startswith(name + "{"):
            continue
        found = dict(
            part.split("=", 1) for part in head[len(name) + 1 : -1].split(",") if "=" in part
        )
        if {k: v.strip('"') for k, v in found.items()} == labels:
            return float(value)
    return 0.0


async def metrics_of(client: aiohttp.ClientSession, admin_url: str) -> str:
    async with client.get(admin_url + "/metrics") as response:
        return await response.text()


def peak_rss_reset() -> int:
    """Reset this process's peak RSS (Linux ``clear_refs``); return the current RSS in bytes."""
    with open("/proc/self/clear_refs", "w") as handle:  # noqa: PTH123 - a procfs control file
        handle.write("5")
    return _status_kb("VmRSS") * 1024


def peak_rss() -> int:
    """The peak RSS since the last reset, in bytes."""
    return _status_kb("VmHWM") * 1024


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as handle:  # noqa: PTH123 - procfs
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)
