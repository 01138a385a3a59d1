"""The traffic listener: a lean HTTP/1.1 server in front of the proxy's one handler.

aiohttp's server builds, for every request, a message object, a URL, a stream reader and a
response object with header logic of its own; on the benchmark machine that was 40 µs of a
minimal forward's 99 (docs/BENCHMARKS.md, round 7). A proxy needs less: parse the head with llhttp
(httptools), give the handler the request as parsed, and write the answer's head and body as
given, adding only the framing.

One task per connection serves its requests in order; pipelined requests wait their turn. A
request body is handed over as it arrives, with the socket no longer read while 256 KB wait. A
body the handler left unread is read away (for at most :data:`LINGER` seconds) so that the client
gets the answer rather than a reset; a connection closed while the client still sends (a
refused head) ends our side first and waits briefly for the client's. A head is bounded as its
bytes arrive (414 past :data:`FIELD_MAX` of target, 400 past it in a field, 431 past
:data:`HEAD_MAX` in all), and must complete, like an idle connection's next request, within
:data:`KEEPALIVE_TIMEOUT`. WebSocket upgrades are handed, with their connection, to aiohttp's
server, which the relay is built on. The handler is not cancelled when its client leaves: writing
to the closed connection raises :class:`ConnectionResetError`, as in aiohttp.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Collection
from http import HTTPStatus

import httptools
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy, MultiDictProxy
from yarl import URL

from shadowproxy.proxy.http1 import BUFFER_HIGH, HEADER_ENCODING, WriteFlow
from shadowproxy.tasks import TaskSet

log = logging.getLogger("shadowproxy.traffic")

KEEPALIVE_TIMEOUT = 75.0
"""Seconds an idle client connection is kept, and a head may take to arrive (aiohttp's default)."""
LINGER = 10.0
"""Seconds spent reading away a request body the handler did not read (aiohttp's default)."""
FIELD_MAX = 16 * 1024
"""Longest request target or header field (aiohttp's limit here before)."""
HEAD_MAX = 64 * 1024
"""Largest request head, all fields together."""
_CLOSE_LINGER = 2.0
"""Seconds a connection closed with the client still sending waits for the client to close."""
_PIPELINE_MAX = 16
"""Requests parsed ahead of the one being served before the socket stops being read."""
_BODYLESS = frozenset({204, 304})


class Request:
    """One client request as parsed, and the writing of its answer.

    The handler reads the body with :meth:`read` and answers with :meth:`start`, :meth:`write`
    and :meth:`end` (or :meth:`reply` for a short plain one); :meth:`abort` breaks the
    connection when an answer cannot be completed.
    """

    scheme = "http"

    def __init__(
        self,
        connection: _Connection,
        method: str,
        target: str,
        version: str,
        fields: list[tuple[str, str]],
        *,
        keep_alive: bool,
    ) -> None:
        self._connection = connection
        self.method = method
        self.target = target
        """The request target as sent: path and query, percent-encoded."""
        self.version = version
        self.fields = fields
        """The header fields as they came, in order."""
        self.keep_alive = keep_alive
        self.remote: str | None = connection.peer
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self.complete = False
        """The whole body has arrived."""
        self._broken = False
        self._waiter: asyncio.Future[None] | None = None
        self._continued = False
        self._discard = False
        self._pending = b""
        self._chunked = False
        self._bodyless = False
        self._length: int | None = None
        self._sent = 0
        self.handoff = False
        """A WebSocket upgrade: the connection goes to aiohttp's server with it."""
        self.started = False
        """The head of the answer has been given to the connection."""
        self.finished = False

    @functools.cached_property
    def headers(self) -> CIMultiDictProxy[str]:
        """The header fields by name."""
        return CIMultiDictProxy(CIMultiDict(self.fields))

    @functools.cached_property
    def _url(self) -> URL:
        path, _, query = self.target.partition("?")
        return URL.build(path=path, query_string=query, encoded=True)

    @property
    def path(self) -> str:
        """The path, percent-decoded."""
        return self._url.path

    @property
    def query(self) -> MultiDictProxy[str]:
        """The query arguments, percent-decoded."""
        return self._url.query

    @property
    def host(self) -> str | None:
        return self.headers.get("Host")

    @functools.cached_property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        return int(value) if value is not None else None

    @property
    def body_exists(self) -> bool:
        """A body follows the head (a length over 0, or chunked)."""
        headers = self.headers
        return "Transfer-Encoding" in headers or bool(self.content_length)

    # --- the body ---------------------------------------------------------------------------

    async def read(self) -> bytes:
        """The next piece of the body, ``b""`` at its end. Raises :class:`ConnectionResetError`
        when the client left before the end or broke the framing."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._buffered < BUFFER_HIGH:
                    self._connection.resume()
                return chunk
            if self.complete:
                return b""
            if self._broken:
                raise ConnectionResetError("the client left before the end of the body")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _feed(self, chunk: bytes) -> None:
        if self._discard:
            return
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        if self._buffered >= BUFFER_HIGH:
            self._connection.pause()
        self._wake()

    def _drop_body(self) -> None:
        """What is buffered and all that is still to come of the body is dropped."""
        self._discard = True
        self._chunks.clear()
        self._buffered = 0

    def _end(self, *, broken: bool = False) -> None:
        if broken:
            self._broken = True
        else:
            self.complete = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def send_continue(self) -> None:
        """``100 Continue``: the client may send the body it asked about."""
        self._continued = True
        self._connection.send(b"HTTP/1.1 100 Continue\r\n\r\n")

    # --- the answer -------------------------------------------------------------------------

    def start(
        self, status: int, reason: str, fields: Collection[tuple[str, str]], *, whole: bool = False
    ) -> None:
        """The head of the answer: ``fields`` as given, plus the framing they lack.

        With ``whole`` (the body is all here already) the head waits for it and both leave in
        one write; otherwise it is sent at once, so the client sees the status of a stream.
        """
        lines = [f"HTTP/1.1 {status} {reason}\r\n"]
        for name, value in fields:
            lines.append(f"{name}: {value}\r\n")
            if len(name) == 14 and name.lower() == "content-length":
                self._length = int(value)
        self._bodyless = self.method == "HEAD" or status < 200 or status in _BODYLESS
        if self._length is None and not self._bodyless:
            if self.version == "1.1":
                self._chunked = True
                lines.append("Transfer-Encoding: chunked\r\n")
            else:
                self.keep_alive = False  # an HTTP/1.0 client learns the end from the close
        if not self.keep_alive or self._connection.closing:
            self.keep_alive = False
            lines.append("Connection: close\r\n")
        elif self.version == "1.0":
            lines.append("Connection: keep-alive\r\n")
        lines.append("\r\n")
        self.started = True
        head = "".join(lines).encode(*HEADER_ENCODING)
        if whole:
            self._pending = head
        else:
            self._connection.send(head)

    async def write(self, chunk: bytes) -> None:
        """A piece of the body. Raises :class:`ConnectionResetError` once the client left."""
        if chunk and not self._bodyless:
            self._connection.send(self._pending + self._frame(chunk))
            self._pending = b""
            await self._connection.drain()

    async def end(self, chunk: bytes = b"") -> None:
        """The last piece of the body, and the end of the answer."""
        data = self._pending
        if chunk and not self._bodyless:
            data += self._frame(chunk)
        if self._chunked:
            data += b"0\r\n\r\n"
        self._pending = b""
        self.finished = True
        if self._length is not None and self._sent != self._length and not self._bodyless:
            self.keep_alive = False  # a short body: the close tells the client it is broken
        if data:
            self._connection.send(data)
        await self._connection.drain()

    async def reply(self, status: int, text: str) -> None:
        """A short plain-text answer of the proxy's own."""
        body = (text + "\n").encode()
        fields = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ]
        self.start(status, HTTPStatus(status).phrase, fields, whole=True)
        await self.end(body)

    def abort(self) -> None:
        """Break the connection: an answer that cannot be completed must not look complete."""
        self.keep_alive = False
        self._connection.abort()

    def _frame(self, chunk: bytes) -> bytes:
        if self._chunked:
            return b"%x\r\n%b\r\n" % (len(chunk), chunk)
        self._sent += len(chunk)
        return chunk

    def head_bytes(self, fields: Collection[tuple[str, str]] | None = None) -> bytes:
        """The head as received, or with other ``fields`` (for parsing or handing it on)."""
        lines = [f"{self.method} {self.target} HTTP/{self.version}\r\n"]
        for name, value in self.fields if fields is None else fields:
            lines.append(f"{name}: {value}\r\n")
        lines.append("\r\n")
        return "".join(lines).encode(*HEADER_ENCODING)


Handler = Callable[[Request], Awaitable[None]]


class _RefusalError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class _Connection(WriteFlow):
    """One client connection: llhttp's callbacks build requests, one task answers them."""

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self._queue: collections.deque[Request | _RefusalError] = collections.deque()
        self._parsing: Request | None = None
        """The request whose body is arriving."""
        self._last: Request | None = None
        self._url = b""
        self._fields: list[tuple[str, str]] = []
        self._head_size = 0
        self._head_seen: int | None = None
        """Bytes received since the head being parsed began (``None`` between heads)."""
        self._restore: list[tuple[str, str]] | None = None
        self._next: asyncio.Future[None] | None = None
        self._upgrade: bytearray | None = None
        self._ignore = False
        self._paused_reading = False
        self._gone: asyncio.Future[None] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._idle_since: float | None = None
        """When the connection last became idle; ``None`` while a request is being served."""
        self._handed_off = False
        self.closing = False
        self.closed = False

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else None
        self._listener.opened(self)

    def data_received(self, data: bytes) -> None:
        if self._upgrade is not None:
            self._upgrade += data  # for the protocol this connection is handed to
            return
        if self._ignore:
            return
        if self._head_seen is not None:
            # httptools gathers a field's pieces before on_header sees it: bound what a head
            # can make it hold, however slowly its bytes come.
            self._head_seen += len(data)
            if self._head_seen > HEAD_MAX:
                self._refused(_RefusalError(431, "431 Request Header Fields Too Large"))
                return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgraded(data[exc.args[0] :])
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            self._refused(cause if isinstance(cause, _RefusalError) else None, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._idle is not None:
            self._idle.cancel()
        for request in (self._parsing, *self._queue):
            if isinstance(request, Request) and not request.complete:
                request._end(broken=True)
        for waiter in (self._next, self._gone):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        self.resume_writing()  # a writer waiting for room learns the client is gone

    # --- llhttp's callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._fields = []
        self._head_size = 0
        self._head_seen = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > FIELD_MAX:
            raise _RefusalError(414, "414 URI Too Long")

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value) + 4  # with ": " and CRLF
        self._head_size += size
        if size > FIELD_MAX:
            raise _RefusalError(400, "400 Bad Request: header field too long")
        if self._head_size > HEAD_MAX:
            raise _RefusalError(431, "431 Request Header Fields Too Large")
        self._fields.append((name.decode(*HEADER_ENCODING), value.decode(*HEADER_ENCODING)))

    def on_headers_complete(self) -> None:
        parser = self._parser
        self._head_seen = None
        fields, self._restore = self._restore or self._fields, None
        request = Request(
            self,
            parser.get_method().decode("ascii"),
            self._url.decode(*HEADER_ENCODING),
            parser.get_http_version(),
            fields,
            keep_alive=parser.should_keep_alive(),
        )
        self._parsing = self._last = request
        if parser.should_upgrade():
            if request.method == "CONNECT":
                request.keep_alive = False  # answered (refused) as a request, then closed
            elif (
                request.headers.get("Upgrade", "").lower() == "websocket"
                and request.target.startswith("/")  # else refused by the handler, as any other
            ):
                request.handoff = True
            else:
                return  # another protocol (h2c): served as plain HTTP/1.1, see _upgraded
        self._idle_since = None
        self._queue.append(request)
        if len(self._queue) > _PIPELINE_MAX:
            self.pause()
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._parsing is not None:
            self._parsing._feed(body)

    def on_message_complete(self) -> None:
        if self._parsing is not None:
            self._parsing._end()
            self._parsing = None

    # --- parsing outcomes -------------------------------------------------------------------

    def _upgraded(self, rest: bytes) -> None:
        request = self._last
        if request is None:
            return
        if request.method == "CONNECT":
            self._ignore = True  # the rest would be a tunnel's bytes
        elif request.handoff:
            self._upgrade = bytearray(rest)
        else:
            # llhttp stopped at an upgrade to a protocol the proxy does not speak: parse the same
            # head again without the upgrade token (its body, if any, is in ``rest``), keeping
            # the fields as sent for the handler.
            self._parsing = None
            self._restore = request.fields
            self._parser = httptools.HttpRequestParser(self)
            plain = [field for field in request.fields if field[0].lower() != "connection"]
            self.data_received(request.head_bytes(plain) + rest)

    def _refused(
        self, cause: _RefusalError | None, exc: httptools.HttpParserError | None = None
    ) -> None:
        """A head over a limit (``cause``), or bytes llhttp refused (``exc``)."""
        self._ignore = True
        self._listener.refused += 1
        # The error's name or the limit passed, never the bytes around it (they may hold secrets).
        log.debug("refused a malformed request (%s)", cause.text if cause else type(exc).__name__)
        if self._parsing is not None:
            # Broken framing mid-body: the request being read ends broken, then the connection.
            self._parsing._end(broken=True)
            self._parsing.keep_alive = False
            self._parsing = None
            return
        self._queue.append(cause or _RefusalError(400, "400 Bad Request"))
        self._wake()

    # --- serving ----------------------------------------------------------------------------

    async def serve(self) -> None:
        """Answer the connection's requests in order until it closes (or is handed on)."""
        try:
            while not self.closed:
                request = await self._take()
                if request is None:
                    break
                if isinstance(request, _RefusalError):
                    await self._refuse(request)
                    await self._close_gently()
                    break
                if request.handoff:
                    self._hand_off(request)
                    break
                await self._answer(request)
                if not request.keep_alive or self.closing:
                    if not request.complete:
                        await self._close_gently()
                    break
                if not await self._read_away(request):
                    await self._close_gently()
                    break
        finally:
            self.close()

    async def _close_gently(self) -> None:
        """End our side, then drop what the client still sends until it closes too (for at most
        :data:`_CLOSE_LINGER` seconds). Closing with its bytes unread would reset the connection,
        and a reset can destroy the answer before the client has read it."""
        transport = self._transport
        if transport is None or transport.is_closing() or self._handed_off:
            return
        self._ignore = True
        self.resume()
        self._gone = asyncio.get_running_loop().create_future()
        if transport.can_write_eof():
            transport.write_eof()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CLOSE_LINGER):
                await self._gone

    async def _answer(self, request: Request) -> None:
        try:
            await self._listener.handler(request)
        except ConnectionError:
            request.keep_alive = False  # the client left while being answered
        except Exception:
            # The path only: a query string can carry tokens.
            path = request.target.partition("?")[0]
            log.exception("the handler failed on %s %s", request.method, path)
            if not request.started:
                request.keep_alive = False
                with contextlib.suppress(ConnectionError):
                    await request.reply(500, "500 Internal Server Error")
        except asyncio.CancelledError:
            self.abort()
            raise
        if not request.finished:
            request.abort()

    async def _take(self) -> Request | _RefusalError | None:
        while not self._queue:
            if self.closed or self.closing:
                return None
            loop = asyncio.get_running_loop()
            self._idle_since = loop.time()
            if self._idle is None:
                # One timer per idle spell at most, not one per request: it checks on firing
                # whether the connection was idle all along (see _expire).
                self._idle = loop.call_at(
                    self._idle_since + self._listener.keepalive_timeout, self._expire
                )
            self._next = loop.create_future()
            try:
                await self._next
            finally:
                self._next = None
        request = self._queue.popleft()
        if len(self._queue) <= _PIPELINE_MAX:
            self.resume()
        return request

    def _expire(self) -> None:
        self._idle = None
        since = self._idle_since
        if since is None:
            return  # serving; the next idle spell sets the timer again
        deadline = since + self._listener.keepalive_timeout
        if deadline > asyncio.get_running_loop().time():
            self._idle = asyncio.get_running_loop().call_at(deadline, self._expire)
        else:
            self.close()  # idle all along, or a head that never completed

    async def _read_away(self, request: Request) -> bool:
        """Whether the connection can serve the next request: the body of this one was read to
        its end, or is read away now. A client that asked first and was not told to continue
        sends no body: its connection is closed instead of waited on."""
        if request.complete:
            return True
        if "Expect" in request.headers and not request._continued:
            return False
        request._drop_body()
        self.resume()
        try:
            async with asyncio.timeout(self._listener.linger):
                while not request.complete:
                    await request.read()
        except (TimeoutError, ConnectionResetError):
            return False
        return True

    async def _refuse(self, refusal: _RefusalError) -> None:
        # No request was parsed; a stand-in carries the answer, built where every plain one is.
        request = Request(self, "GET", "/", "1.1", [], keep_alive=False)
        with contextlib.suppress(ConnectionError):
            await request.reply(refusal.status, refusal.text)

    def _hand_off(self, request: Request) -> None:
        """Give the connection, from this request on, to aiohttp's server."""
        transport = self._transport
        assert transport is not None
        assert self._upgrade is not None
        protocol = self._listener.upgrades()
        self._handed_off = True
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(request.head_bytes() + bytes(self._upgrade))
        self._upgrade = None
        self.resume()

    def _wake(self) -> None:
        waiter = self._next
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- the socket -------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("Cannot write to closing transport")
        transport.write(data)

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("Cannot write to closing transport")
        await self.writable()
        if self.closed:
            raise ConnectionResetError("Connection lost")

    def pause(self) -> None:
        if not self._paused_reading and self._transport is not None:
            self._paused_reading = True
            self._transport.pause_reading()

    def resume(self) -> None:
        if self._paused_reading and self._transport is not None:
            self._paused_reading = False
            if not self._transport.is_closing():
                self._transport.resume_reading()

    def close(self) -> None:
        """Close once what was written has been sent."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._transport is not None and not self._handed_off:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None and not self._handed_off:
            self._transport.abort()

    def shut_down(self) -> None:
        """Finish the request being served (if any), then close."""
        self.closing = True
        self._wake()  # an idle connection's task stops waiting for a request, and closes


class Listener:
    """The traffic listener's sockets and connections: ``handler`` answers every request but
    WebSocket upgrades, which go to ``upgrades`` (an aiohttp server) with their connection."""

    def __init__(
        self,
        handler: Handler,
        upgrades: web.Server,
        *,
        keepalive_timeout: float = KEEPALIVE_TIMEOUT,
        linger: float = LINGER,
    ) -> None:
        self.handler = handler
        self.upgrades = upgrades
        self.keepalive_timeout = keepalive_timeout
        self.linger = linger
        self.refused = 0
        """Requests the parser refused (malformed, or over the size limits)."""
        self._connections = TaskSet("connection")
        self._open: set[_Connection] = set()
        self._servers: list[asyncio.Server] = []

    def opened(self, connection: _Connection) -> None:
        self._open.add(connection)
        task = self._connections.spawn(connection.serve())
        task.add_done_callback(lambda _: self._open.discard(connection))

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> tuple[str, int]:
        """Listen on ``host:port``; returns the address bound (the port chosen for 0)."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _Connection(self),
            host,
            port,
            reuse_address=True,
            reuse_port=reuse_port or None,
        )
        self._servers.append(server)
        return self.address

    @property
    def address(self) -> tuple[str, int]:
        """Where the first socket listens."""
        address: tuple[str, int] = self._servers[0].sockets[0].getsockname()[:2]
        return address

    async def aclose(self, timeout: float) -> None:
        """Stop listening, let requests being served finish for ``timeout`` seconds (idle
        connections close at once), then cut the rest."""
        for server in self._servers:
            server.close()
        for connection in list(self._open):
            connection.shut_down()
        await self._connections.aclose(timeout)
        await self.upgrades.shutdown(timeout)
        for server in self._servers:
            await server.wait_closed()


__all__ = ["FIELD_MAX", "HEAD_MAX", "KEEPALIVE_TIMEOUT", "LINGER", "Handler", "Listener", "Request"]
