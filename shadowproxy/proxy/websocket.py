"""WebSocket upgrades: relayed to the primary only (a socket cannot be mirrored meaningfully)."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import WSMsgType, web
from multidict import CIMultiDict

from shadowproxy.proxy.backend import Backend

# The handshake fields are the relay's own on each side; forwarding the client's would clash.
_HANDSHAKE = (
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Extensions",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Protocol",
)


def is_websocket_upgrade(request: web.BaseRequest) -> bool:
    headers = request.headers
    return (
        request.method == "GET"
        and headers.get("Upgrade", "").lower() == "websocket"
        and "upgrade" in headers.get("Connection", "").lower()
    )


async def relay_websocket(
    request: web.BaseRequest, backend: Backend, headers: CIMultiDict[str]
) -> web.StreamResponse:
    """Open the same WebSocket on the primary and pump frames both ways until either closes."""
    protocols = tuple(
        p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
    )
    upstream_headers = headers.copy()
    for name in _HANDSHAKE:
        upstream_headers.popall(name, None)
    url = backend.url_for(request.raw_path)
    url = url.with_scheme("wss" if url.scheme == "https" else "ws")
    try:
        upstream = await backend.websockets.ws_connect(
            url, headers=upstream_headers, protocols=protocols, autoping=False
        )
    except aiohttp.WSServerHandshakeError as exc:
        return web.Response(status=exc.status or 502, text=f"{exc.status} {exc.message}\n")
    except (TimeoutError, aiohttp.ClientError, OSError):
        return web.Response(status=502, text="502 Bad Gateway\n", content_type="text/plain")
    async with upstream:
        client = web.WebSocketResponse(
            protocols=(upstream.protocol,) if upstream.protocol else (), autoping=False
        )
        await client.prepare(request)
        async with asyncio.TaskGroup() as group:
            group.create_task(_pump(upstream, client))
            group.create_task(_pump(client, upstream))
        return client


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
) -> None:
    async for message in source:
        if message.type is WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type is WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif message.type is WSMsgType.PING:
            await sink.ping(message.data)
        elif message.type is WSMsgType.PONG:
            await sink.pong(message.data)
    # One side closed: close the other with the same code.
    if not sink.closed:
        await sink.close(code=source.close_code or 1000)
