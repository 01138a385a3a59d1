"""The client's request body as the proxy reads it: bounded in size and in patience.

A client may send more than ``--request-body-max`` (chunked: no Content-Length to refuse up front),
stall mid-body, leave, or break the chunked framing. Each of these is the client's doing: the
request gets a 4xx if the client is still there, and is counted as a client body failure, never as
a failure of the primary's (a dashboard would otherwise blame the primary for flaky clients).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable


class BodyFailure(enum.Enum):
    """Why a request body could not be read whole; the value is the metric label."""

    TOO_LARGE = "too_large"
    TIMEOUT = "timeout"
    INCOMPLETE = "incomplete"
    """The client left mid-body, or broke the chunked framing."""

    @property
    def status(self) -> int:
        """The status the client is answered with."""
        return _ANSWERS[self][0]

    @property
    def text(self) -> str:
        """The plain-text body of that answer."""
        return _ANSWERS[self][1]


_ANSWERS = {
    BodyFailure.TOO_LARGE: (413, "413 Request Entity Too Large"),
    BodyFailure.TIMEOUT: (408, "408 Request Timeout"),
    BodyFailure.INCOMPLETE: (400, "400 Bad Request: incomplete request body"),
}


class BodyError(Exception):
    """Raised out of a read; :attr:`failure` says why."""

    def __init__(self, failure: BodyFailure) -> None:
        super().__init__(failure.value)
        self.failure = failure


class ClientBody:
    """Reads the body with ``read`` (the next chunk, ``b""`` at the end, ConnectionError when the
    client left or broke the framing): at most ``limit`` bytes in all (0: no limit), waiting at
    most ``timeout`` seconds for each chunk."""

    def __init__(self, read: Callable[[], Awaitable[bytes]], *, limit: int, timeout: float) -> None:
        self._read = read
        self._limit = limit
        self._timeout = timeout
        self._seen = 0
        self.failure: BodyFailure | None = None
        """Set when a read failed (also when the backend client reported it as its own)."""

    async def read(self) -> bytes:
        """The next chunk; ``b""`` at the end. Raises :class:`BodyError`."""
        try:
            async with asyncio.timeout(self._timeout):
                chunk = await self._read()
        except TimeoutError:
            raise self._failed(BodyFailure.TIMEOUT) from None
        except ConnectionError:
            raise self._failed(BodyFailure.INCOMPLETE) from None
        self._seen += len(chunk)
        if self._limit and self._seen > self._limit:
            raise self._failed(BodyFailure.TOO_LARGE)
        return chunk

    async def buffer(self, most: int) -> tuple[bytes, AsyncIterator[bytes] | None]:
        """The whole body if it is at most ``most`` bytes; else ``b""`` and an iterator over all
        of it (what was read so far, then the rest)."""
        parts: list[bytes] = []
        size = 0
        while chunk := await self.read():
            parts.append(chunk)
            size += len(chunk)
            if size > most:
                return b"", self.chunks(parts)
        return b"".join(parts), None

    async def chunks(self, head: Iterable[bytes] = ()) -> AsyncIterator[bytes]:
        """``head``, then every chunk still to come."""
        for part in head:
            yield part
        while chunk := await self.read():
            yield chunk

    def _failed(self, failure: BodyFailure) -> BodyError:
        self.failure = failure
        return BodyError(failure)
