"""Mirroring: the shadow is called alongside the primary, and nothing it does reaches the client."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp import web

from shadowproxy.server import RunningProxy
from tests.conftest import StartProxy, StartUpstream

TITLE = {
    "id": 9174,
    "code": "kimetsu",
    "names": {"ru": "Клинок", "en": "Blade"},
    "genres": ["Экшен", "Приключения"],
    "rating": 4.5,
}


SEEN = web.AppKey("seen", list[dict[str, str]])


def backend(title: dict[str, object], *, delay: float = 0.0) -> web.Application:
    seen: list[dict[str, str]] = []

    async def get_title(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        if delay:
            await asyncio.sleep(delay)
        return web.json_response(title)

    async def post_title(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"ok": True})

    app = web.Application()
    app[SEEN] = seen
    app.router.add_get("/v3/title", get_title)
    app.router.add_post("/v3/title", post_title)
    return app


async def timed_get(client: aiohttp.ClientSession, url: str) -> tuple[int, bytes, float]:
    started = time.perf_counter()
    async with client.get(url) as response:
        body = await response.read()
    return response.status, body, time.perf_counter() - started


async def metrics(client: aiohttp.ClientSession, running: RunningProxy) -> str:
    async with client.get(running.admin_url + "/metrics") as response:
        return await response.text()


async def test_mismatch_is_recorded_with_pointers_and_served_by_the_api(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """The client gets the primary's body; the shadow's differences land in the store."""
    changed = {**TITLE, "id": "9174", "genres": ["Приключения", "Экшен"]}
    running = await proxy(await upstream(backend(TITLE)), await upstream(backend(changed)))
    status, body, _ = await timed_get(client, running.traffic_url + "/v3/title?id=9174")
    assert (200, TITLE) == (status, orjson.loads(body))
    assert await running.drain(10)

    async with client.get(
        running.admin_url + "/api/v1/mismatches", params={"endpoint": "GET /v3/title"}
    ) as response:
        page = await response.json()
    [record] = page["items"]
    pointers = {(d["pointer"], d["kind"]) for d in record["differences"]}
    assert {("/id", "type"), ("/genres/0", "value"), ("/genres/1", "value")} == pointers
    assert "mismatch" == record["verdict"]
    text = await metrics(client, running)
    assert 'shadowproxy_comparisons_total{endpoint="GET /v3/title",verdict="mismatch"} 1.0' in text


async def test_shadow_receives_marker_header(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    shadow_app = backend(TITLE)
    primary_app = backend(TITLE)
    running = await proxy(await upstream(primary_app), await upstream(shadow_app))
    await timed_get(client, running.traffic_url + "/v3/title?id=1")
    assert await running.drain(10)
    assert "1" == shadow_app[SEEN][0]["X-Shadow-Request"]
    assert "X-Shadow-Request" not in primary_app[SEEN][0]


async def test_post_is_forwarded_but_not_mirrored(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """Unsafe methods reach the primary only, and the skip is counted."""
    shadow_app = backend(TITLE)
    running = await proxy(await upstream(backend(TITLE)), await upstream(shadow_app))
    async with client.post(running.traffic_url + "/v3/title", json={"x": 1}) as response:
        assert {"ok": True} == await response.json()
    assert await running.drain(10)
    assert [] == shadow_app[SEEN]
    text = await metrics(client, running)
    assert (
        'shadowproxy_mirror_skips_total{endpoint="POST /v3/title",reason="unsafe_method"} 1.0'
        in text
    )


@pytest.fixture
async def refusing_port() -> AsyncIterator[int]:
    """A port with nothing listening (bound, never listened: connections are refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
async def resetting_url() -> AsyncIterator[str]:
    """A server that sends headers and half a body, then resets the connection."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"id": 91'
        )
        await writer.drain()
        writer.transport.abort()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


def garbage_backend() -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=b"<html>502 from some load balancer</html>\x00\xff",
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_get("/v3/title", handler)
    return app


@pytest.mark.parametrize("fault", ["slow", "refused", "reset", "garbage"])
async def test_shadow_faults_never_reach_the_client(
    upstream: StartUpstream,
    proxy: StartProxy,
    client: aiohttp.ClientSession,
    refusing_port: int,
    resetting_url: str,
    fault: str,
) -> None:
    """A slow, refusing, resetting or garbage-sending shadow: the client gets the primary's
    response as fast as with a healthy shadow, and the comparison says what went wrong."""
    primary = await upstream(backend(TITLE))
    healthy = await proxy(primary, await upstream(backend(TITLE)))
    if fault == "slow":
        shadow = await upstream(backend(TITLE, delay=2.0))
    elif fault == "garbage":
        shadow = await upstream(garbage_backend())
    else:
        shadow = {"refused": f"http://127.0.0.1:{refusing_port}", "reset": resetting_url}[fault]
    faulty = await proxy(primary, shadow, shadow_timeout=1.0)
    url = "/v3/title?id=9174"
    baseline = [await timed_get(client, healthy.traffic_url + url) for _ in range(5)]
    observed = [await timed_get(client, faulty.traffic_url + url) for _ in range(5)]
    expected_body = orjson.dumps(TITLE)
    assert all((200, expected_body) == (s, orjson.dumps(orjson.loads(b))) for s, b, _ in observed)
    # Generous margin: the slow shadow sleeps 2 s; a client that waited for it would show it.
    assert max(t for *_, t in observed) < max(t for *_, t in baseline) + 0.5

    assert await faulty.drain(15)
    page = await faulty.store.mismatches(endpoint="GET /v3/title")
    verdicts = {r.verdict for r in page.items}
    expected = {
        "slow": "shadow_error",
        "refused": "shadow_error",
        "reset": "shadow_error",
        "garbage": "mismatch",
    }[fault]
    assert {expected} == verdicts
    if fault == "garbage":
        kinds = {d.kind for r in page.items for d in r.differences}
        assert "unparseable" in kinds
    else:
        reasons = {r.reason for r in page.items}
        assert {"slow": {"timeout"}, "refused": {"connect"}, "reset": {"reset"}}[fault] == reasons


async def test_full_queue_drops_and_counts(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """With a one-slot queue and a burst of large bodies, comparisons are dropped and counted,
    and every client still gets its answer."""
    big = {"list": [{**TITLE, "id": i, "description": "Описание " * 400} for i in range(200)]}
    running = await proxy(await upstream(backend(big)), await upstream(backend(big)), queue_size=1)
    dropped, compared = await burst(client, running, 40)
    assert dropped > 0
    assert 40 == dropped + compared


async def burst(
    client: aiohttp.ClientSession, running: RunningProxy, n: int
) -> tuple[float, float]:
    """``n`` concurrent requests, all answered 200; then (shed as queue_full, compared)."""
    results = await asyncio.gather(
        *(timed_get(client, running.traffic_url + "/v3/title") for _ in range(n))
    )
    assert {200} == {status for status, _, _ in results}
    assert await running.drain(30)
    text = await metrics(client, running)
    shed = _sample(
        text, 'shadowproxy_mirror_skips_total{endpoint="GET /v3/title",reason="queue_full"}'
    )
    compared = _sample(
        text, 'shadowproxy_comparisons_total{endpoint="GET /v3/title",verdict="match"}'
    )
    return shed, compared


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_shadow_gets_the_query_string_as_sent(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """Percent-encoded (Cyrillic) queries reach the shadow exactly as the client sent them."""
    shadow_app = backend(TITLE)
    running = await proxy(await upstream(backend(TITLE)), await upstream(shadow_app))
    target = "/v3/title?search=%D0%BA%D0%BB%D0%B8%D0%BD%D0%BE%D0%BA&limit=5"
    await timed_get(client, running.traffic_url + target)
    assert await running.drain(10)
    page = await running.store.mismatches()
    assert [] == list(page.items)
    text = await metrics(client, running)
    assert 'shadowproxy_comparisons_total{endpoint="GET /v3/title",verdict="match"} 1.0' in text


async def test_queue_byte_budget_drops_and_counts(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """Exchanges whose bodies would push the queue past its byte budget are dropped, counted."""
    big = {"list": [{**TITLE, "id": i, "description": "Описание " * 400} for i in range(100)]}
    running = await proxy(
        await upstream(backend(big)), await upstream(backend(big)), queue_bytes_max=1024
    )
    status, _, _ = await timed_get(client, running.traffic_url + "/v3/title")
    assert 200 == status
    assert await running.drain(10)
    text = await metrics(client, running)
    assert 1.0 == _sample(
        text, 'shadowproxy_mirror_skips_total{endpoint="GET /v3/title",reason="queue_full"}'
    )


async def test_shed_requests_never_reach_the_shadow(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """Room is asked for before the shadow call, counting calls in flight: when the queue is
    full the request is shed and counted without costing the shadow a call."""
    shadow_app = backend(TITLE, delay=0.3)
    running = await proxy(await upstream(backend(TITLE)), await upstream(shadow_app), queue_size=2)
    shed, compared = await burst(client, running, 20)
    assert (20, len(shadow_app[SEEN])) == (shed + compared, compared)
    assert compared <= 2


async def test_bodies_held_by_a_hung_shadow_count_against_the_byte_budget(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """While the shadow hangs, the primaries' bodies its calls wait with are held in memory:
    they count against the queue's byte budget, so no more calls start once it is spent."""
    big = {"list": [{**TITLE, "id": i, "description": "Описание " * 400} for i in range(25)]}
    primary = await upstream(backend(big))
    async with client.get(primary + "/v3/title") as response:
        size = len(await response.read())
    shadow_app = backend(big, delay=2.0)
    running = await proxy(primary, await upstream(shadow_app), queue_bytes_max=size * 5 // 2)
    for _ in range(8):  # one by one, so each primary body is held before the next asks
        status, _, _ = await timed_get(client, running.traffic_url + "/v3/title")
        assert 200 == status
    shed = _sample(
        await metrics(client, running),
        'shadowproxy_mirror_skips_total{endpoint="GET /v3/title",reason="queue_full"}',
    )
    assert (3, 5) == (len(shadow_app[SEEN]), shed)
    assert await running.drain(10)


async def test_a_probe_the_rate_cap_refuses_does_not_wedge_the_breaker(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """A half-open breaker lets one probe through. When the shadow rate cap then refuses that
    call, the probe is handed back: once the shadow is healthy, mirroring resumes."""
    answers = {"slow": 1}

    async def title(request: web.Request) -> web.Response:
        if answers["slow"]:
            answers["slow"] -= 1
            await asyncio.sleep(0.5)  # past --shadow-timeout: the breaker opens
        return web.json_response(TITLE)

    shadow_app = web.Application()
    shadow_app.router.add_get("/v3/title", title)
    running = await proxy(
        await upstream(backend(TITLE)),
        await upstream(shadow_app),
        shadow_timeout=0.2,
        breaker_failures=1,
        breaker_cooldown=0.3,
        shadow_rps=1.0,
    )
    url = running.traffic_url + "/v3/title"
    await timed_get(client, url)  # takes the one token; times out; the breaker opens
    await asyncio.sleep(0.5)
    await timed_get(client, url)  # half-open: the probe is let through, the cap refuses it
    await asyncio.sleep(1.5)  # the bucket refills
    for _ in range(5):
        await timed_get(client, url)
        await asyncio.sleep(0.3)
    assert await running.drain(10)
    text = await metrics(client, running)
    assert _sample(
        text, 'shadowproxy_mirror_skips_total{endpoint="GET /v3/title",reason="rate_limited"}'
    )
    assert (
        _sample(text, 'shadowproxy_comparisons_total{endpoint="GET /v3/title",verdict="match"}')
        >= 1
    )
