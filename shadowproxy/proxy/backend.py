"""One upstream (primary or shadow): its base URL, its own connection pool, its timeouts.

Each backend gets exactly one ``ClientSession`` for the life of the app, so connections are pooled
and the shadow's pool can never starve the primary's. Sessions never follow redirects and never
decompress: the proxy passes bytes, and the comparator decodes its own copy.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from shadowproxy.model import BackendError, ErrorKind


@dataclass(frozen=True, slots=True)
class BackendConfig:
    name: str
    """``primary`` or ``shadow``: the metric label."""
    base_url: str
    connect_timeout: float
    read_timeout: float
    """Seconds allowed between two reads (a response may stream for longer in total)."""
    total_timeout: float | None = None
    """Seconds for the whole exchange (the shadow has one; the primary streams without)."""
    max_connections: int = 0
    """0: no cap on the pool."""
    tls_verify: bool = True


class Backend:
    """A backend's base URL and its pooled session."""

    def __init__(self, config: BackendConfig, session: aiohttp.ClientSession) -> None:
        self.config = config
        self.session = session
        base = URL(config.base_url)
        self._prefix = str(base.with_query(None).with_fragment(None)).rstrip("/")

    @property
    def name(self) -> str:
        return self.config.name

    def url_for(self, target: str) -> URL:
        """The backend URL for a request target (``/path?query``, already percent-encoded)."""
        return URL(self._prefix + target, encoded=True)


class _VerbatimRequest(aiohttp.ClientRequest):
    """A request carrying the client's headers and none of aiohttp's defaults (Accept,
    Accept-Encoding, User-Agent, a body's Content-Type).

    The session's ``skip_auto_headers`` says the same, but aiohttp rebuilds that set (sorted,
    copied, merged with the headers) for every request: 2-3 % of a forwarded request's CPU. Here it
    is built once. tests/proxy/test_forward.py holds the proxy to sending nothing of its own.
    """

    _SKIPPED: CIMultiDict[None] = CIMultiDict(
        (name, None) for name in ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
    )

    def update_auto_headers(self, skip_auto_headers: Iterable[str] | None) -> None:
        self._skip_auto_headers = self._SKIPPED


@asynccontextmanager
async def open_backend(config: BackendConfig) -> AsyncIterator[Backend]:
    """Create the backend's session; close it (and its pooled connections) on exit."""
    ssl_context: ssl.SSLContext | bool = config.tls_verify
    connector = aiohttp.TCPConnector(
        limit=config.max_connections,
        ssl=ssl_context,
        ttl_dns_cache=60,
        enable_cleanup_closed=False,
    )
    timeout = aiohttp.ClientTimeout(
        total=config.total_timeout,
        sock_connect=config.connect_timeout,
        sock_read=config.read_timeout,
    )
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),  # cookies belong to the client, never to the proxy
        request_class=_VerbatimRequest,
        raise_for_status=False,
    )
    try:
        yield Backend(config, session)
    finally:
        await session.close()


def classify_failure(exc: BaseException, elapsed: float) -> BackendError:
    """Map a client-side exception to the :class:`BackendError` kind users reason about."""
    detail = f"{type(exc).__name__}: {exc}"[:300]
    kind: ErrorKind
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        kind = ErrorKind.TIMEOUT
    elif isinstance(exc, aiohttp.ClientConnectorError):
        kind = ErrorKind.CONNECT
    elif isinstance(
        exc,
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientPayloadError
        | aiohttp.ClientOSError
        | ConnectionResetError,
    ):
        kind = ErrorKind.RESET
    else:
        kind = ErrorKind.PROTOCOL
    return BackendError(kind=kind, elapsed=elapsed, detail=detail)
