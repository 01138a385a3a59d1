"""The primary forward: through the proxy, a response equals the direct one."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import ssl
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web
from multidict import CIMultiDict

from shadowproxy.proxy.headers import HOP_BY_HOP
from tests.conftest import StartProxy, StartUpstream
from tests.reliability.faults import sample

BIG = os.urandom(10 * 1024 * 1024)
JSON_BODY = b'{"id": 9174, "names": {"ru": "\xd0\x9a\xd0\xbb\xd0\xb8\xd0\xbd\xd0\xbe\xd0\xba"}}'


def catalogue() -> web.Application:
    """A primary with one route per kind of response the proxy must pass untouched."""

    async def json_handler(request: web.Request) -> web.Response:
        return web.Response(
            body=JSON_BODY,
            content_type="application/json",
            headers={"X-Powered-By": "Express", "ETag": 'W/"abc"'},
        )

    async def gzipped(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(JSON_BODY * 100),
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Content-Encoding": "gzip",
                "Vary": "Accept-Encoding",
            },
        )

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=BIG, content_type="application/octet-stream")

    async def no_content(request: web.Request) -> web.Response:
        return web.Response(status=204, headers={"X-Trace": "t1"})

    async def not_modified(request: web.Request) -> web.Response:
        return web.Response(status=304, headers={"ETag": 'W/"abc"', "Cache-Control": "max-age=60"})

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/v3/title?id=1"})

    async def cookies(request: web.Request) -> web.Response:
        response = web.Response(text="ok")
        response.headers.add("Set-Cookie", "a=1; Path=/")
        response.headers.add("Set-Cookie", "b=2; Path=/; HttpOnly")
        response.headers.add("Set-Cookie", "c=3; Path=/")
        return response

    async def hop(request: web.Request) -> web.Response:
        return web.Response(
            text="hop",
            headers={
                "Connection": "X-Internal",
                "X-Internal": "secret-hop",
                "Keep-Alive": "timeout=5",
                "X-Kept": "yes",
            },
        )

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        seen = dict(request.headers.items())
        return web.json_response(
            {
                "method": request.method,
                "len": len(body),
                "headers": seen,
                "raw_path": request.raw_path,
            }
        )

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/json", json_handler)
    app.router.add_get("/gzip", gzipped)
    app.router.add_get("/big", big)
    app.router.add_route("*", "/nocontent", no_content)
    app.router.add_get("/notmodified", not_modified)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/cookies", cookies)
    app.router.add_get("/hop", hop)
    app.router.add_route("*", "/echo", echo)
    return app


def comparable(headers: CIMultiDict[str]) -> list[tuple[str, str]]:
    """Headers a transparent proxy must keep: all but hop-by-hop and the clock."""
    named = {t.strip().lower() for v in headers.getall("Connection", []) for t in v.split(",")}
    return [
        (k.lower(), v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP | named | {"date"}
    ]


async def fetch(
    client: aiohttp.ClientSession, method: str, url: str
) -> tuple[int, list[tuple[str, str]], bytes]:
    async with client.request(method, url, allow_redirects=False) as response:
        body = await response.read()
        return response.status, comparable(response.headers.copy()), body


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/json"),
        ("GET", "/gzip"),
        ("GET", "/big"),
        ("HEAD", "/json"),
        ("HEAD", "/big"),
        ("GET", "/nocontent"),
        ("GET", "/notmodified"),
        ("GET", "/redirect"),
        ("GET", "/cookies"),
        ("OPTIONS", "/nocontent"),
    ],
)
async def test_response_through_proxy_equals_direct(
    upstream: StartUpstream,
    proxy: StartProxy,
    client: aiohttp.ClientSession,
    method: str,
    path: str,
) -> None:
    """Status, headers (less hop-by-hop) and body bytes are what the primary sent."""
    primary = await upstream(catalogue())
    shadow = await upstream(catalogue())
    running = await proxy(primary, shadow)
    direct = await fetch(client, method, primary + path)
    through = await fetch(client, method, running.traffic_url + path)
    assert direct == through


async def test_gzip_body_stays_encoded(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """The proxy never decodes or re-encodes what the client receives."""
    running = await proxy(await upstream(catalogue()), await upstream(catalogue()))
    async with client.get(running.traffic_url + "/gzip") as response:
        body = await response.read()
    assert response.headers["Content-Encoding"] == "gzip"
    assert JSON_BODY * 100 == gzip.decompress(body)


async def test_repeated_set_cookie_keeps_order_and_count(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    running = await proxy(await upstream(catalogue()), await upstream(catalogue()))
    async with client.get(running.traffic_url + "/cookies") as response:
        cookies = response.headers.getall("Set-Cookie")
    assert ["a=1; Path=/", "b=2; Path=/; HttpOnly", "c=3; Path=/"] == cookies


async def test_hop_by_hop_fields_are_dropped(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """Keep-Alive and fields named in Connection stop at the proxy; the rest pass."""
    running = await proxy(await upstream(catalogue()), await upstream(catalogue()))
    async with client.get(running.traffic_url + "/hop") as response:
        headers = response.headers
    assert "X-Internal" not in headers
    assert "Keep-Alive" not in headers
    assert "yes" == headers["X-Kept"]


async def test_request_reaches_primary_with_forwarded_headers(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """X-Forwarded-For is appended; hop-by-hop request fields are dropped; the path is raw."""
    running = await proxy(await upstream(catalogue()), await upstream(catalogue()))
    async with client.get(
        running.traffic_url + "/echo?search=%D0%BA%D0%BB%D0%B8%D0%BD%D0%BE%D0%BA&a=1",
        headers={
            "X-Forwarded-For": "203.0.113.7",
            "Connection": "X-Drop",
            "X-Drop": "1",
            "Authorization": "Bearer keep-me",
        },
    ) as response:
        seen = await response.json()
    headers = seen["headers"]
    assert "203.0.113.7, 127.0.0.1" == headers["X-Forwarded-For"]
    assert "http" == headers["X-Forwarded-Proto"]
    assert running.traffic_url.removeprefix("http://") == headers["X-Forwarded-Host"]
    assert "X-Drop" not in headers
    assert "Bearer keep-me" == headers["Authorization"]
    assert "/echo?search=%D0%BA%D0%BB%D0%B8%D0%BD%D0%BE%D0%BA&a=1" == seen["raw_path"]


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_the_proxy_adds_no_header_of_its_own_but_x_forwarded(
    upstream: StartUpstream, proxy: StartProxy, method: str
) -> None:
    """A bare request reaches the primary with no User-Agent, Accept, Accept-Encoding or
    Content-Type that an HTTP client library would add: the primary sees the client."""
    running = await proxy(await upstream(catalogue()), await upstream(catalogue()))
    host, port = running.traffic_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    body = b"hello" if method == "POST" else b""
    framing = b"Content-Length: 5\r\n" if body else b""
    writer.write(f"{method} /echo HTTP/1.1\r\nHost: a\r\n".encode() + framing + b"\r\n" + body)
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        seen = json.loads(await asyncio.wait_for(reader.readexactly(length), 5))
    finally:
        writer.close()
    expected = {"Host", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"}
    assert expected | ({"Content-Length"} if body else set()) == set(seen["headers"])


async def test_post_body_reaches_primary(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """Request bodies are forwarded whole, large ones included (streamed, not mirrored)."""
    running = await proxy(
        await upstream(catalogue()), await upstream(catalogue()), mirror_body_max=1024
    )
    async with client.post(
        running.traffic_url + "/echo", data=io.BytesIO(BIG[:3_000_000])
    ) as response:
        seen = await response.json()
    assert ("POST", 3_000_000) == (seen["method"], seen["len"])


async def test_chunked_stream_reaches_client_before_primary_finishes(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """The first chunk arrives while the primary still holds back the last one."""
    release = asyncio.Event()

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: first\n\n")
        await asyncio.wait_for(release.wait(), 10)
        await response.write(b"data: last\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/events", stream)
    running = await proxy(await upstream(app), await upstream(catalogue()))
    async with client.get(running.traffic_url + "/events") as response:
        first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)
        assert not release.is_set()
        release.set()
        rest = await response.read()
    assert (b"data: first\n\n", b"data: last\n\n") == (first, rest)


async def test_status_reaches_client_before_the_primary_sends_a_body(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """Headers are held back to share a write with the body only when the body is already
    there: a primary that answers the headers and then thinks is seen answering at once."""
    release = asyncio.Event()

    async def slow_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)  # the headers leave now, the body later
        await asyncio.wait_for(release.wait(), 10)
        await response.write(JSON_BODY)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/slow-body", slow_body)
    running = await proxy(await upstream(app), await upstream(catalogue()))
    async with asyncio.timeout(5), client.get(running.traffic_url + "/slow-body") as response:
        assert (200, False) == (response.status, release.is_set())
        release.set()
        assert JSON_BODY == await response.read()


async def test_unreachable_primary_is_502(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession, unused_tcp_port: int
) -> None:
    running = await proxy(f"http://127.0.0.1:{unused_tcp_port}", await upstream(catalogue()))
    async with client.get(running.traffic_url + "/json") as response:
        body = await response.text()
    assert (502, "502 Bad Gateway\n") == (response.status, body)
    metrics = await _metrics(client, running.admin_url)
    assert (
        'shadowproxy_backend_errors_total{backend="primary",endpoint="GET /json",kind="connect"} 1.0'
        in metrics
    )


async def test_slow_primary_is_504(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/slow", slow)
    running = await proxy(await upstream(app), await upstream(catalogue()), primary_timeout=0.3)
    async with client.get(running.traffic_url + "/slow") as response:
        body = await response.text()
    assert (504, "504 Gateway Timeout\n") == (response.status, body)
    metrics = await _metrics(client, running.admin_url)
    assert 'kind="timeout"} 1.0' in metrics


async def test_websocket_is_relayed_to_primary(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """Upgrades go to the primary only, frames pass both ways; the skip is counted."""

    async def ws_echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("anilibria.v1",))
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str("echo:" + message.data)
        return ws

    app = web.Application()
    app.router.add_get("/ws", ws_echo)
    running = await proxy(await upstream(app), await upstream(catalogue()))
    async with client.ws_connect(running.traffic_url + "/ws", protocols=("anilibria.v1",)) as ws:
        await ws.send_str("title_update")
        reply = await asyncio.wait_for(ws.receive_str(), 5)
        protocol = ws.protocol
    assert ("echo:title_update", "anilibria.v1") == (reply, protocol)
    metrics = await _metrics(client, running.admin_url)
    assert 'shadowproxy_mirror_skips_total{endpoint="GET /ws",reason="upgrade"} 1.0' in metrics


async def test_https_upstreams(
    tmp_path: Path, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """HTTPS backends work; certificates are verified unless told otherwise."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    runner = web.AppRunner(catalogue(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    try:
        port = runner.addresses[0][1]
        url = f"https://127.0.0.1:{port}"
        unverified = await proxy(url, url, tls_verify=False)
        async with client.get(unverified.traffic_url + "/json") as response:
            assert (200, JSON_BODY) == (response.status, await response.read())
        verified = await proxy(url, url)  # the throwaway CA is not trusted: 502
        async with client.get(verified.traffic_url + "/json") as response:
            assert 502 == response.status
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("keep_alive", [True, False])
async def test_primary_connections_are_pooled_and_counted(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession, keep_alive: bool
) -> None:
    """Requests one after another share one pooled connection to the primary; a primary that
    closes each connection shows in the opened count, request for request."""

    async def answer(request: web.Request) -> web.Response:
        response = web.Response(body=JSON_BODY, content_type="application/json")
        if not keep_alive:
            response.force_close()
        return response

    app = web.Application()
    app.router.add_get("/t", answer)
    running = await proxy(await upstream(app), await upstream(catalogue()), sample=0)
    for _ in range(3):
        async with client.get(running.traffic_url + "/t") as response:
            assert JSON_BODY == await response.read()
    metrics = await _metrics(client, running.admin_url)
    connections = {
        state: sample(metrics, "shadowproxy_backend_connections", backend="primary", state=state)
        for state in ("busy", "idle")
    }
    opened = sample(metrics, "shadowproxy_backend_connections_opened_total", backend="primary")
    if keep_alive:
        assert ({"busy": 0.0, "idle": 1.0}, 1.0) == (connections, opened)
    else:
        assert ({"busy": 0.0, "idle": 0.0}, 3.0) == (connections, opened)


async def _metrics(client: aiohttp.ClientSession, admin_url: str) -> str:
    async with client.get(admin_url + "/metrics") as response:
        return await response.text()
