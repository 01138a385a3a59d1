"""The backends' HTTP/1.1 client, against real servers: aiohttp apps, and raw sockets for the
framings and failures a well-behaved server never produces."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from multidict import CIMultiDict

from shadowproxy.model import ErrorKind
from shadowproxy.proxy.client import HEAD_MAX, IDLE_MAX, BackendConfig, Client, ExchangeError
from tests.conftest import StartUpstream

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def open_client(
    url: str, *, read_timeout: float = 2.0, max_connections: int = 0, idle_max: float = IDLE_MAX
) -> AsyncIterator[Client]:
    client = Client(
        BackendConfig(
            name="primary",
            base_url=url,
            connect_timeout=2.0,
            read_timeout=read_timeout,
            max_connections=max_connections,
        ),
        idle_max=idle_max,
    )
    try:
        yield client
    finally:
        await client.aclose()


@asynccontextmanager
async def raw_backend(script: Script) -> AsyncIterator[tuple[str, list[int]]]:
    """A server that runs ``script`` on each connection; yields its URL and the list of
    connections' client ports, in order of arrival."""
    peers: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peername")[1])
        try:
            await script(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", peers
    finally:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request's head and (Content-Length-framed) body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


async def get(client: Client, target: str = "/", method: str = "GET") -> tuple[int, bytes]:
    response = await client.request(method, target, CIMultiDict())
    async with response:
        body, _ = await response.read(1 << 30)
    return response.status, body


def echo_app() -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "target": request.raw_path,
                "headers": list(request.headers.items()),
                "body": body.decode(),
                "peer": request.transport.get_extra_info("peername")[1] if request.transport else 0,
            }
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


async def test_connections_are_kept_alive_and_reused(upstream: StartUpstream) -> None:
    url = await upstream(echo_app())
    async with open_client(url) as client:
        peers = []
        for _ in range(3):
            response = await client.request("GET", "/a", CIMultiDict())
            async with response:
                body, _ = await response.read(1 << 20)
            peers.append(json.loads(body)["peer"])
    assert 1 == len(set(peers))


async def test_the_request_is_written_as_given(upstream: StartUpstream) -> None:
    """Headers in order, repeated names kept, non-ASCII bytes unchanged, nothing added but Host
    and the body's length; the base URL's path prefixes the target."""
    url = await upstream(echo_app())
    headers = CIMultiDict([("X-A", "1"), ("X-Title", "Клинок"), ("x-a", "2")])
    async with open_client(url + "/api/") as client:
        response = await client.request("POST", "/v1/t?q=%D0%BA", headers, b"hello")
        async with response:
            seen = json.loads((await response.read(1 << 20))[0])
    assert "/api/v1/t?q=%D0%BA" == seen["target"]
    assert [
        ["Host", url.removeprefix("http://")],
        ["X-A", "1"],
        ["X-Title", "Клинок"],
        ["x-a", "2"],
        ["Content-Length", "5"],
    ] == seen["headers"]
    assert "hello" == seen["body"]


async def test_a_streamed_body_without_length_is_sent_chunked(upstream: StartUpstream) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b"ab", b"", b"cd" * 50_000):
            yield part

    url = await upstream(echo_app())
    async with open_client(url) as client:
        response = await client.request("PUT", "/", CIMultiDict(), parts())
        async with response:
            seen = json.loads((await response.read(1 << 20))[0])
    assert ("Transfer-Encoding", "chunked") in map(tuple, seen["headers"])
    assert "ab" + "cd" * 50_000 == seen["body"]


async def test_a_failing_body_is_not_taken_for_a_whole_one() -> None:
    received: list[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read())  # until the client closes

    async def broken() -> AsyncIterator[bytes]:
        yield b"first"
        raise ConnectionResetError("client left")

    async with raw_backend(script) as (url, _), open_client(url) as client:
        with pytest.raises(ExchangeError) as caught:
            await client.request("POST", "/", CIMultiDict(), broken())
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.01)
    assert ErrorKind.PROTOCOL is caught.value.kind
    assert received[0].endswith(b"5\r\nfirst\r\n")  # no terminating 0-chunk was sent


@pytest.mark.parametrize(
    ("answer", "body"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            b"abcde",
        ),
        (b"HTTP/1.1 204 No Content\r\nX-T: 1\r\n\r\n", b""),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", b""),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"ok"),
    ],
)
async def test_framings_and_the_connection_stays_usable(answer: bytes, body: bytes) -> None:
    """Each framing ends where it should: a second request on the same connection works."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")
        await reader.read()

    async with raw_backend(script) as (url, peers), open_client(url) as client:
        first = await get(client)
        second = await get(client)
    assert (body, (200, b"next"), 1) == (first[1], second, len(peers))


async def test_a_head_answer_has_no_body_whatever_its_length_says() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 330000\r\n\r\n")
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")
        await reader.read()

    async with raw_backend(script) as (url, peers), open_client(url) as client:
        response = await client.request("HEAD", "/", CIMultiDict())
        async with response:
            assert (True, "330000") == (response.whole(), response.headers["Content-Length"])
        assert (200, b"next") == await get(client)
    assert 1 == len(peers)


async def test_a_body_that_ends_with_the_connection() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of ")
        await writer.drain()
        writer.write(b"it")

    async with raw_backend(script) as (url, peers), open_client(url) as client:
        assert (200, b"all of it") == await get(client)
        assert (200, b"all of it") == await get(client)
    assert 2 == len(peers)  # that connection could not be used again


@pytest.mark.parametrize("method", ["GET", "PUT", "POST"])
async def test_a_pooled_connection_the_backend_closed_is_replaced_unseen(method: str) -> None:
    """The backend closed the pooled connection (its keep-alive timeout) just as the next request
    went out: an idempotent request goes out again on a new connection; a POST may have been
    acted on, and fails."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        # The next request arrives as the backend gives up on the connection: no answer.
        await read_request(reader)

    async with raw_backend(script) as (url, peers), open_client(url) as client:
        assert (200, b"ok") == await get(client)
        if method == "POST":
            with pytest.raises(ExchangeError) as caught:
                await get(client, method=method)
            assert (ErrorKind.RESET, 1) == (caught.value.kind, len(peers))
        else:
            assert (200, b"ok") == await get(client, method=method)
            assert 2 == len(peers)


async def test_an_idle_connection_is_closed_rather_than_reused_late() -> None:
    """Past ``idle_max`` a pooled connection is closed and a new one opened: the backend may be
    about to close it (Node.js does after 5 s)."""
    ended: list[int] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                break
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        ended.append(writer.get_extra_info("peername")[1])

    async with raw_backend(script) as (url, peers), open_client(url, idle_max=1.0) as client:
        await get(client)
        await get(client)  # at once: the same connection
        await asyncio.sleep(1.2)
        await get(client)
        for _ in range(100):
            if ended:
                break
            await asyncio.sleep(0.01)
        assert 2 == len(peers)
        assert [peers[0]] == ended


async def test_a_head_that_never_ends_is_refused() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(HEAD_MAX // 1000 + 2):
            writer.write(b"X-Flood: " + b"a" * 1000 + b"\r\n")
            await writer.drain()
        await reader.read()

    async with raw_backend(script) as (url, _), open_client(url) as client:
        with pytest.raises(ExchangeError) as caught:
            await get(client)
    assert ErrorKind.PROTOCOL is caught.value.kind
    assert "head over" in str(caught.value)


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\ncut short", ErrorKind.RESET),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc", ErrorKind.RESET),
        (b"SMTP ready\r\n\r\n", ErrorKind.PROTOCOL),
        (b"", ErrorKind.RESET),
    ],
)
async def test_a_broken_answer_is_an_error_of_its_kind(answer: bytes, kind: ErrorKind) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)

    async with raw_backend(script) as (url, _), open_client(url) as client:
        with pytest.raises(ExchangeError) as caught:
            await get(client)
    assert kind is caught.value.kind


async def test_timeouts_before_the_answer_and_between_reads() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        if b"/slow-head" in head:
            await asyncio.sleep(5)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst")
        await writer.drain()
        await asyncio.sleep(5)

    async with raw_backend(script) as (url, _), open_client(url, read_timeout=0.2) as client:
        with pytest.raises(ExchangeError) as caught:
            await client.request("GET", "/slow-head", CIMultiDict())
        assert ErrorKind.TIMEOUT is caught.value.kind
        response = await client.request("GET", "/slow-body", CIMultiDict())
        with pytest.raises(ExchangeError) as caught:
            await response.read(1 << 20)
        assert ErrorKind.TIMEOUT is caught.value.kind
        response.release()


async def test_an_unreachable_backend_is_a_connect_error(unused_tcp_port: int) -> None:
    async with open_client(f"http://127.0.0.1:{unused_tcp_port}") as client:
        with pytest.raises(ExchangeError) as caught:
            await get(client)
    assert ErrorKind.CONNECT is caught.value.kind


async def test_a_slow_reader_holds_the_backend_back(upstream: StartUpstream) -> None:
    """The socket stops being read while the body waits for its reader: a 64 MB answer does not
    pile up in the proxy's memory."""
    written = 0

    async def flood(request: web.Request) -> web.StreamResponse:
        nonlocal written
        response = web.StreamResponse()
        await response.prepare(request)
        block = b"x" * 65536
        for _ in range(1024):
            await response.write(block)
            written += len(block)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/", flood)
    url = await upstream(app)
    async with open_client(url) as client:
        response = await client.request("GET", "/", CIMultiDict())
        async with response:
            await asyncio.sleep(0.5)
            stalled_at = written
            total = sum([len(chunk) async for chunk in response.chunks()])
    assert stalled_at < 16 * 1024 * 1024
    assert 64 * 1024 * 1024 == total


async def test_the_connection_cap_queues_requests(upstream: StartUpstream) -> None:
    running = 0
    most = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.05)
        running -= 1
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", slow)
    url = await upstream(app)
    async with open_client(url, max_connections=2) as client:
        answers = await asyncio.gather(*(get(client) for _ in range(6)))
    assert [(200, b"ok")] * 6 == answers
    assert 2 == most
