"""What the proxy's two HTTP/1.1 endpoints share: the backend client (``client.py``) and the
traffic listener (``listener.py``), both asyncio protocols over llhttp.

Header bytes become text and back without loss, so a field passes the proxy byte for byte. Body
bytes waiting for a slow reader are bounded before the socket stops being read. Writing waits
while the transport's buffer is over its high-water mark.
"""

from __future__ import annotations

import asyncio

HEADER_ENCODING = ("utf-8", "surrogateescape")
"""How header bytes become text and back (as aiohttp does): unchanged in both directions."""
BUFFER_HIGH = 256 * 1024
"""Body bytes held for a slow reader before the socket stops being read."""


class WriteFlow(asyncio.Protocol):
    """Write back-pressure as an awaitable: :meth:`writable` waits while the transport has
    paused writing. A subclass calls :meth:`resume_writing` when its connection is lost, so no
    writer waits for a socket that is gone."""

    _writable: asyncio.Future[None] | None = None

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    async def writable(self) -> None:
        """Until the transport takes writes again (at once when it does now)."""
        if self._writable is not None:
            await self._writable


__all__ = ["BUFFER_HIGH", "HEADER_ENCODING", "WriteFlow"]
