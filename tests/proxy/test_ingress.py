"""Hostile or malformed requests get a 4xx from the proxy and never reach a backend as they are."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from shadowproxy.server import RunningProxy
from tests.conftest import StartProxy, StartUpstream
from tests.polling import eventually

HITS = web.AppKey("hits", list[str])


def recording_backend() -> web.Application:
    hits: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        await request.read()
        hits.append(f"{request.method} {request.raw_path}")
        return web.Response(text="ok")

    app = web.Application(client_max_size=1 << 30)
    app[HITS] = hits
    app.router.add_route("*", "/{tail:.*}", anything)
    return app


async def raw_exchange(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()


async def assert_refused_and_still_serving(
    running: RunningProxy, primary: web.Application, shadow: web.Application
) -> None:
    """Neither backend saw the refused request, and the proxy still serves the next client."""
    assert await running.drain(5)
    assert ([], []) == (primary[HITS], shadow[HITS])
    async with (
        aiohttp.ClientSession() as client,
        client.get(running.traffic_url + "/ok") as response,
    ):
        assert 200 == response.status


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET http://evil.example/steal HTTP/1.1\r\nHost: evil.example\r\n\r\n", b"400"),
        (b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", b"405"),
        (
            b"GET http://evil.example/ws HTTP/1.1\r\nHost: evil.example\r\n"
            b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            b"400",
        ),
        (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", b"400"),
        (b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n", b"400"),
        (
            b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"400",
        ),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n", b"400"),
        (b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999\r\n\r\n", b"413"),
        (b"POST /x HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\nContent-Length: 2\r\n\r\n", b"417"),
    ],
    ids=[
        "absolute-form",
        "connect",
        "websocket-absolute-form",
        "asterisk",
        "bad-method",
        "cl-and-te",
        "huge-header",
        "body-over-limit",
        "unknown-expectation",
    ],
)
async def test_malformed_requests_get_4xx_and_are_not_forwarded(
    upstream: StartUpstream, proxy: StartProxy, request_bytes: bytes, status: bytes
) -> None:
    primary = recording_backend()
    shadow = recording_backend()
    running = await proxy(
        await upstream(primary), await upstream(shadow), request_body_max=1024 * 1024
    )
    answer = await raw_exchange(running.traffic_url, request_bytes)
    assert status == answer.split(b" ", 2)[1]
    await assert_refused_and_still_serving(running, primary, shadow)


async def test_chunked_body_over_the_limit_is_413(
    upstream: StartUpstream, proxy: StartProxy
) -> None:
    """Without a Content-Length, the body is counted as it streams and stopped at the limit."""
    primary = recording_backend()
    running = await proxy(
        await upstream(primary),
        await upstream(recording_backend()),
        request_body_max=64 * 1024,
        mirror_body_max=1024,
    )

    async def chunks() -> object:
        for _ in range(100):
            yield b"x" * 4096

    async with (
        aiohttp.ClientSession() as client,
        client.post(running.traffic_url + "/upload", data=chunks()) as response,
    ):
        assert 413 == response.status


async def test_expect_100_continue_is_answered_before_the_body_is_sent(
    upstream: StartUpstream, proxy: StartProxy
) -> None:
    """A client that asks first (curl does past 1 KB) is told to go on, and its body arrives."""
    primary = recording_backend()
    running = await proxy(await upstream(primary), await upstream(recording_backend()))
    host, port = running.traffic_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"POST /titles HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim.startswith(b"HTTP/1.1 100 ")
        writer.write(b"hello")
        final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert final.startswith(b"HTTP/1.1 200 ")
    finally:
        writer.close()
    assert await running.drain(5)
    assert ["POST /titles"] == primary[HITS]


async def test_expect_100_continue_over_the_body_limit_is_refused_before_the_body(
    upstream: StartUpstream, proxy: StartProxy
) -> None:
    """The point of asking first: a body the proxy would refuse is never sent."""
    primary = recording_backend()
    running = await proxy(
        await upstream(primary), await upstream(recording_backend()), request_body_max=1024
    )
    answer = await raw_exchange(
        running.traffic_url,
        b"POST /upload HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
        b"Content-Length: 999999\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert [] == primary[HITS]


MIRROR_POSTS = "version: 1\nendpoints:\n  - name: upload\n    match: {method: POST, path: /upload}\n    mirror: true\n"


def metric(running: RunningProxy, name: str, **labels: str) -> float:
    """One sample of the proxy's own exposition (0 when absent)."""
    wanted = {f'{key}="{value}"' for key, value in labels.items()}
    for line in running.runtime.metrics.render().decode().splitlines():
        series, _, value = line.rpartition(" ")
        if series.split("{")[0] == name and wanted <= set(series.partition("{")[2][:-1].split(",")):
            return float(value)
    return 0.0


@pytest.mark.parametrize("mirrored", [False, True], ids=["streamed", "buffered-for-the-shadow"])
@pytest.mark.parametrize(("client", "reason"), [("leaves", "incomplete"), ("stalls", "timeout")])
async def test_a_request_body_the_client_does_not_finish_is_no_primary_failure(
    upstream: StartUpstream,
    proxy: StartProxy,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    mirrored: bool,
    client: str,
    reason: str,
) -> None:
    """A client that leaves mid-upload, or stalls past --client-body-timeout (it gets 408), is
    counted as the client's doing: not as a primary error (a dashboard would blame the primary
    for flaky clients), and not logged as an error of the proxy's."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(MIRROR_POSTS)
    running = await proxy(
        await upstream(recording_backend()),
        await upstream(recording_backend()),
        rules=rules if mirrored else None,
        client_body_timeout=0.5,
    )
    host, port = running.traffic_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n"
    )
    await writer.drain()
    if client == "leaves":
        await asyncio.sleep(0.1)  # the proxy is waiting for the rest of the body
        writer.close()
    else:
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert answer.startswith(b"HTTP/1.1 408 ")
        writer.close()
    await eventually(
        lambda: metric(running, "shadowproxy_client_body_failures_total", reason=reason), 5
    )
    assert 0 == metric(running, "shadowproxy_backend_errors_total", backend="primary")
    logged = [r for r in caplog.records if r.name.startswith("shadowproxy")]
    assert [] == [r.getMessage() for r in logged if r.levelno >= logging.ERROR]
    async with (
        aiohttp.ClientSession() as session,
        session.get(running.traffic_url + "/ok") as response,
    ):
        assert 200 == response.status
