"""One upstream (primary or shadow): its configuration, its own connection pool, its timeouts.

Each backend gets exactly one :class:`~shadowproxy.proxy.client.Client` for the life of the app,
so connections are pooled and the shadow's pool can never starve the primary's. A WebSocket
upgrade is the one exchange that client does not speak: those go through an aiohttp session of
the backend's own. Neither follows redirects or decompresses: the proxy passes bytes, and the
comparator decodes its own copy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from yarl import URL

from shadowproxy.model import BackendError, ErrorKind
from shadowproxy.proxy.client import BackendConfig, Client, ExchangeError


class Backend:
    """A backend's configuration, its HTTP client and its WebSocket session."""

    def __init__(
        self, config: BackendConfig, client: Client, websockets: aiohttp.ClientSession
    ) -> None:
        self.config = config
        self.client = client
        self.websockets = websockets
        """For WebSocket relays only."""
        base = URL(config.base_url)
        self._prefix = str(base.with_query(None).with_fragment(None)).rstrip("/")

    @property
    def name(self) -> str:
        return self.config.name

    def url_for(self, target: str) -> URL:
        """The backend URL for a request target (``/path?query``, already percent-encoded)."""
        return URL(self._prefix + target, encoded=True)


@asynccontextmanager
async def open_backend(config: BackendConfig) -> AsyncIterator[Backend]:
    """Create the backend's client and session; close them (and their connections) on exit."""
    client = Client(config)
    websockets = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=config.tls_verify),
        timeout=aiohttp.ClientTimeout(sock_connect=config.connect_timeout),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),  # cookies belong to the client, never to the proxy
        skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent"),
    )
    try:
        yield Backend(config, client, websockets)
    finally:
        await websockets.close()
        await client.aclose()


def classify_failure(exc: ExchangeError | TimeoutError, elapsed: float) -> BackendError:
    """The :class:`BackendError` for a failed exchange (``TimeoutError``: a deadline around the
    whole of it ran out)."""
    if isinstance(exc, ExchangeError):
        return BackendError(kind=exc.kind, elapsed=elapsed, detail=str(exc))
    return BackendError(
        kind=ErrorKind.TIMEOUT, elapsed=elapsed, detail=f"TimeoutError: over {elapsed:.3g}s"
    )


__all__ = ["Backend", "BackendConfig", "classify_failure", "open_backend"]
