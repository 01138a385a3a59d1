"""The traffic listener's HTTP/1.1 server, over real sockets: framing, keep-alive, pipelining,
back-pressure, bodies left unread, upgrades to protocols the proxy does not speak, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from shadowproxy.proxy.http1 import BUFFER_HIGH
from shadowproxy.proxy.listener import FIELD_MAX, HEAD_MAX, Listener, Request
from shadowproxy.tasks import TaskSet

Handler = Callable[[Request], Awaitable[None]]


async def echo(request: Request) -> None:
    """Answers with the method, target and body it read, whole."""
    body = bytearray()
    while chunk := await request.read():
        body += chunk
    text = f"{request.method} {request.target} {len(body)}".encode() + b" " + bytes(body)
    request.start(200, "OK", [("Content-Length", str(len(text)))], whole=True)
    await request.end(text)


async def unused_upgrade(request: web.BaseRequest) -> web.StreamResponse:
    return web.Response(status=599)


@asynccontextmanager
async def listening(handler: Handler, **options: float) -> AsyncIterator[Listener]:
    listener = Listener(handler, web.Server(unused_upgrade), **options)
    await listener.start("127.0.0.1", 0)
    try:
        yield listener
    finally:
        await listener.aclose(2.0)


@asynccontextmanager
async def connected(
    listener: Listener,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    host, port = listener.address
    reader, writer = await asyncio.open_connection(host, port)
    try:
        yield reader, writer
    finally:
        writer.close()


async def answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One answer framed by Content-Length: (head, body)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head, await asyncio.wait_for(reader.readexactly(length), 5)


async def test_keep_alive_and_pipelined_requests_are_answered_in_order() -> None:
    async with listening(echo) as listener, connected(listener) as (reader, writer):
        writer.write(
            b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
            b"POST /two?x=%41 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
            b"POST /three HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nde\r\n0\r\n\r\n"
        )
        bodies = [(await answer(reader))[1] for _ in range(3)]
        assert [b"GET /one 0 ", b"POST /two?x=%41 3 abc", b"POST /three 2 de"] == bodies
        writer.write(b"GET /four HTTP/1.1\r\nHost: a\r\n\r\n")
        assert b"GET /four 0 " == (await answer(reader))[1]


@pytest.mark.parametrize(
    ("request_line", "extra", "expected_connection", "stays_open"),
    [
        (b"GET / HTTP/1.1", b"", None, True),
        (b"GET / HTTP/1.1", b"Connection: close\r\n", b"close", False),
        (b"GET / HTTP/1.0", b"", b"close", False),
        (b"GET / HTTP/1.0", b"Connection: keep-alive\r\n", b"keep-alive", True),
    ],
    ids=["1.1", "1.1-close", "1.0", "1.0-keep-alive"],
)
async def test_connection_persistence_follows_the_client(
    request_line: bytes, extra: bytes, expected_connection: bytes | None, stays_open: bool
) -> None:
    async with listening(echo) as listener, connected(listener) as (reader, writer):
        writer.write(request_line + b"\r\nHost: a\r\n" + extra + b"\r\n")
        head, _ = await answer(reader)
        connection = [
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"connection:")
        ]
        assert ([expected_connection] if expected_connection else []) == connection
        if stays_open:
            writer.write(b"GET /again HTTP/1.1\r\nHost: a\r\n\r\n")
            assert b"GET /again 0 " == (await answer(reader))[1]
        else:
            assert b"" == await asyncio.wait_for(reader.read(), 5)


async def streamed(request: Request) -> None:
    """A body of unknown length, in three pieces."""
    request.start(200, "OK", [("X-Kind", "stream")])
    for piece in (b"ab", b"", b"cd"):
        await request.write(piece)
    await request.end(b"ef")


@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
async def test_a_body_of_unknown_length_is_chunked_for_1_1_and_ends_with_the_close_for_1_0(
    version: bytes,
) -> None:
    async with listening(streamed) as listener, connected(listener) as (reader, writer):
        writer.write(b"GET / HTTP/" + version + b"\r\nHost: a\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        if version == b"1.1":
            assert b"Transfer-Encoding: chunked" in head
            body = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5)
            assert b"2\r\nab\r\n2\r\ncd\r\n2\r\nef\r\n0\r\n\r\n" == body
        else:
            assert b"Transfer-Encoding" not in head
            assert b"Connection: close" in head
            assert b"abcdef" == await asyncio.wait_for(reader.read(), 5)


async def test_head_and_204_answers_carry_no_body_and_keep_the_connection() -> None:
    async def bodyless(request: Request) -> None:
        status = 204 if request.target == "/none" else 200
        request.start(status, "X", [("Content-Length", "5")] if status == 200 else [])
        await request.end(b"hello")  # a HEAD answer describes the body it does not send

    async with listening(bodyless) as listener, connected(listener) as (reader, writer):
        writer.write(
            b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n"
            b"GET /none HTTP/1.1\r\nHost: a\r\n\r\n"
            b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        everything = await asyncio.wait_for(reader.read(), 5)
    answers = everything.split(b"HTTP/1.1 ")[1:]
    assert [b"200 X\r\nContent-Length: 5\r\n\r\n", b"204 X\r\n\r\n"] == answers[:2]
    assert answers[2].endswith(b"\r\n\r\nhello")


async def test_a_short_body_closes_the_connection() -> None:
    """An answer that ends before its Content-Length must not look complete: the close says so."""

    async def short(request: Request) -> None:
        request.start(200, "OK", [("Content-Length", "10")])
        await request.end(b"abc")

    async with listening(short) as listener, connected(listener) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 5)).endswith(b"\r\n\r\nabc")


async def test_a_slow_handler_stops_the_socket_being_read() -> None:
    """While the handler does not read, the client's upload stalls instead of filling memory;
    once it reads, every byte arrives in order."""
    reading = asyncio.Event()
    received = asyncio.get_running_loop().create_future()
    held: list[Request] = []

    async def slow(request: Request) -> None:
        held.append(request)
        await reading.wait()
        total = bytearray()
        while chunk := await request.read():
            total += chunk
        received.set_result(bytes(total))
        await request.reply(200, "OK")

    size = 32 * 1024 * 1024
    payload = bytes(range(256)) * (size // 256)
    async with listening(slow) as listener, connected(listener) as (reader, writer):
        writer.write(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size)
        writer.write(payload)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(writer.drain(), 1.0)
        (request,) = held
        assert BUFFER_HIGH <= request._buffered < BUFFER_HIGH + 1024 * 1024
        reading.set()
        await asyncio.wait_for(writer.drain(), 10)
        assert payload == await asyncio.wait_for(received, 10)
        head, _ = await answer(reader)
        assert head.startswith(b"HTTP/1.1 200 ")


async def test_a_body_left_unread_is_read_away_and_the_connection_serves_on() -> None:
    """The client is still sending when it gets its answer: the rest of its body is read and
    dropped (closing now would reset the connection under the answer), then the next request
    on the connection is served."""

    async def refuse(request: Request) -> None:
        await request.reply(413, "413 Request Entity Too Large")

    async with listening(refuse) as listener, connected(listener) as (reader, writer):
        writer.write(b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
        writer.write(b"x" * 1000)
        first, _ = await answer(reader)
        writer.write(b"x" * 99000)
        writer.write(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
        second, _ = await answer(reader)
        assert first.startswith(b"HTTP/1.1 413 ")
        assert second.startswith(b"HTTP/1.1 413 ")  # /b was parsed as a request of its own


async def test_a_refused_expectation_closes_instead_of_waiting_for_a_body() -> None:
    async def refuse(request: Request) -> None:
        await request.reply(417, "417 Expectation Failed")

    async with listening(refuse, linger=30) as listener, connected(listener) as (reader, writer):
        writer.write(
            b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        everything = await asyncio.wait_for(reader.read(), 5)
        assert everything.startswith(b"HTTP/1.1 417 ")


async def test_an_idle_connection_is_closed_after_the_keep_alive_timeout() -> None:
    async with (
        listening(echo, keepalive_timeout=0.3) as listener,
        connected(listener) as (reader, writer),
    ):
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        await answer(reader)
        assert b"" == await asyncio.wait_for(reader.read(), 5)
        # A head that never completes is cut as well.
    async with (
        listening(echo, keepalive_timeout=0.3) as listener,
        connected(listener) as (reader, writer),
    ):
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n")
        assert b"" == await asyncio.wait_for(reader.read(), 5)


async def test_an_upgrade_to_another_protocol_is_served_as_plain_http() -> None:
    """``Upgrade: h2c`` (curl --http2 on http://) is not taken up: the request, its body included,
    is served as HTTP/1.1, and so is the next one on the connection."""
    seen: list[tuple[str, bytes, list[tuple[str, str]]]] = []

    async def record(request: Request) -> None:
        body = b""
        while chunk := await request.read():
            body += chunk
        seen.append((request.target, body, request.fields))
        await request.reply(200, "OK")

    async with listening(record) as listener, connected(listener) as (reader, writer):
        writer.write(
            b"POST /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Length: 3\r\n\r\n"
            b"abcGET /next HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        await answer(reader)
        await answer(reader)
    assert ["/up", "/next"] == [target for target, _, _ in seen]
    assert b"abc" == seen[0][1]
    assert ("Connection", "Upgrade, HTTP2-Settings") in seen[0][2]  # the fields as sent


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /" + b"a" * FIELD_MAX + b" HTTP/1.1\r\nHost: a\r\n\r\n", b"414"),
        (b"GET / HTTP/1.1\r\nX-Long: " + b"a" * FIELD_MAX + b"\r\n\r\n", b"400"),
        (
            b"GET / HTTP/1.1\r\n"
            + b"".join(b"X-F%d: %s\r\n" % (i, b"a" * 8000) for i in range(HEAD_MAX // 8000 + 1))
            + b"\r\n",
            b"431",
        ),
        (b"GET / HTTP/1.1\r\nBad Header: 1\r\n\r\n", b"400"),
    ],
    ids=["long-target", "long-field", "big-head", "bad-field"],
)
async def test_oversized_or_malformed_heads_are_refused_and_counted(
    head: bytes, status: bytes
) -> None:
    handled: list[str] = []

    async def record(request: Request) -> None:
        handled.append(request.target)
        await request.reply(200, "OK")

    async with listening(record) as listener, connected(listener) as (reader, writer):
        writer.write(head)
        everything = await asyncio.wait_for(reader.read(), 5)
        assert status == everything.split(b" ", 2)[1]
        assert 1 == listener.refused
    assert [] == handled


async def test_a_handler_that_fails_gets_the_client_a_500() -> None:
    async def broken(request: Request) -> None:
        raise ValueError("bug")

    async with listening(broken) as listener, connected(listener) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        everything = await asyncio.wait_for(reader.read(), 5)
        assert everything.startswith(b"HTTP/1.1 500 ")


async def test_writing_to_a_client_that_left_raises_connection_reset() -> None:
    outcome = asyncio.get_running_loop().create_future()
    started = asyncio.Event()

    async def stream(request: Request) -> None:
        request.start(200, "OK", [])
        started.set()
        try:
            for _ in range(1000):
                await request.write(b"x" * 65536)
                await asyncio.sleep(0.01)
        except ConnectionResetError as exc:
            outcome.set_result(exc)
            raise

    async with listening(stream) as listener:
        async with connected(listener) as (_, writer):
            writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            await asyncio.wait_for(started.wait(), 5)
        assert isinstance(await asyncio.wait_for(outcome, 5), ConnectionResetError)


async def test_shutdown_finishes_the_request_being_served_and_closes_idle_connections() -> None:
    release = asyncio.Event()

    async def slow(request: Request) -> None:
        if request.target == "/slow":
            await release.wait()
        await request.reply(200, "OK")

    listener = Listener(slow, web.Server(unused_upgrade))
    host, port = await listener.start("127.0.0.1", 0)
    idle_reader, idle_writer = await asyncio.open_connection(host, port)
    busy_reader, busy_writer = await asyncio.open_connection(host, port)
    idle_writer.write(b"GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
    await answer(idle_reader)
    busy_writer.write(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
    await asyncio.sleep(0.1)
    tasks = TaskSet("test")
    closing = tasks.spawn(listener.aclose(5.0))
    assert b"" == await asyncio.wait_for(idle_reader.read(), 5)  # the idle one at once
    assert not closing.done()
    release.set()
    head, _ = await answer(busy_reader)
    assert b"Connection: close" in head
    await asyncio.wait_for(closing, 5)
    with pytest.raises((ConnectionError, OSError)):
        await asyncio.open_connection(host, port)
    idle_writer.close()
    busy_writer.close()


async def test_a_field_that_never_ends_is_refused_before_it_is_held_whole() -> None:
    """llhttp hands a field over only once it ends: the bytes of a head are counted as they
    come, so a client cannot make the proxy hold a field of any size."""
    async with listening(echo) as listener, connected(listener) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\nX-Endless: ")
        with contextlib.suppress(ConnectionError):  # refused while still sending
            for _ in range(HEAD_MAX // 1024 + 8):
                writer.write(b"a" * 1024)
                await writer.drain()
                await asyncio.sleep(0)
        everything = await asyncio.wait_for(reader.read(), 5)
        assert b"431" == everything.split(b" ", 2)[1]
        assert 1 == listener.refused


async def test_a_client_that_does_not_read_holds_the_writer_back() -> None:
    """Writing waits while the transport's buffer is full: a slow client costs the proxy a
    bounded buffer, not the whole answer in memory; once it reads, every byte arrives."""
    piece = b"x" * 65536
    pieces = 512  # 32 MB
    written = 0

    async def big(request: Request) -> None:
        nonlocal written
        request.start(200, "OK", [("Content-Length", str(len(piece) * pieces))])
        for _ in range(pieces - 1):
            await request.write(piece)
            written += 1
        await request.end(piece)
        written += 1

    async with listening(big) as listener, connected(listener) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        await asyncio.sleep(1.0)
        assert written < pieces // 2  # held back by the socket buffers, far from all of it
        head, body = await answer(reader)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert len(piece) * pieces == len(body)
        assert pieces == written
