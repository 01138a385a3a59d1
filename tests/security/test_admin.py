"""The admin listener: a token beyond loopback, compared in constant time, never logged; bounded
request bodies on everything it accepts."""

from __future__ import annotations

import hmac
import io
import logging

import aiohttp
import pytest

from shadowproxy.settings import HostPort, SettingsError, resolve
from tests.conftest import StartProxy, StartUpstream
from tests.reliability.faults import healthy_app
from tests.servers import RedisServer

TOKEN = "adm1n-T0ken-5ecret-7f3a"
FINGERPRINT = "0123456789abcdef"
GUARDED = (
    "/metrics",
    "/",
    "/api/v1/summary",
    "/api/v1/mismatches",
    "/api/v1/groups",
    "/api/v1/report?format=json",
    "/api/v1/openapi.json",
)


async def status_of(
    client: aiohttp.ClientSession,
    method: str,
    url: str,
    token: str | None,
    *,
    json: object = None,
    data: object = None,
) -> int:
    headers = {"X-Requested-With": "shadowproxy", "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with client.request(method, url, headers=headers, json=json, data=data) as response:
        await response.read()
        return response.status


def test_non_loopback_admin_listener_needs_a_token() -> None:
    """Start-up refuses an admin listener on all interfaces without a token."""
    with pytest.raises(SettingsError, match="not loopback: set --admin-token"):
        resolve({"primary": "http://a", "shadow": "http://b", "admin_listen": "0.0.0.0:9090"}, {})


async def test_beyond_loopback_everything_but_healthz_needs_the_token(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """No token, a wrong one, a prefix of the right one or the wrong scheme: 401 on every
    admin route; the right one: 200. /healthz stays open for load balancers."""
    backend = await upstream(healthy_app())
    running = await proxy(backend, backend, admin_listen=HostPort("0.0.0.0", 0), admin_token=TOKEN)
    admin = running.admin_url  # 0.0.0.0 reached through 127.0.0.1
    wrong = (None, "", "wrong", TOKEN[:-1], TOKEN + "x", TOKEN.upper())
    for path in GUARDED:
        statuses = [await status_of(client, "GET", admin + path, token) for token in wrong]
        assert [401] * len(wrong) == statuses, path
        assert 200 == await status_of(client, "GET", admin + path, TOKEN), path
    async with client.get(admin + path, headers={"Authorization": f"Basic {TOKEN}"}) as response:
        assert 401 == response.status
    assert 200 == await status_of(client, "GET", admin + "/healthz", None)
    triage = f"{admin}/api/v1/groups/{FINGERPRINT}/triage"
    assert 401 == await status_of(client, "POST", triage, None, json={"state": "open"})
    assert 404 == await status_of(client, "POST", triage, TOKEN, json={"state": "open"})


async def test_token_is_compared_in_constant_time(
    upstream: StartUpstream,
    proxy: StartProxy,
    client: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every check goes through hmac.compare_digest with the whole expected header."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    backend = await upstream(healthy_app())
    running = await proxy(backend, backend, admin_listen=HostPort("0.0.0.0", 0), admin_token=TOKEN)
    for token in ("nope", TOKEN):
        await status_of(client, "GET", running.admin_url + "/api/v1/summary", token)
    expected = f"Bearer {TOKEN}".encode()
    assert [(b"Bearer nope", expected), (expected, expected)] == calls


async def test_token_never_reaches_the_log(
    upstream: StartUpstream,
    proxy: StartProxy,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At debug level, start-up, good and bad tokens and errors log nothing of the token."""
    caplog.set_level(logging.DEBUG)
    backend = await upstream(healthy_app())
    running = await proxy(backend, backend, admin_listen=HostPort("0.0.0.0", 0), admin_token=TOKEN)
    for token in (TOKEN, TOKEN + "x", None):
        for path in ("/api/v1/summary", "/api/v1/mismatches/zz", "/api/v1/rules/reload"):
            await status_of(client, "GET", running.admin_url + path, token)
        await status_of(client, "POST", running.admin_url + "/api/v1/rules/reload", token)
    async with client.get(running.traffic_url + "/v3/title") as response:
        assert 200 == response.status
    assert await running.drain(10)
    logged = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert caplog.records  # debug logging captured something
    assert TOKEN not in logged


ADMIN_WRITES = (
    ("POST", f"/api/v1/groups/{FINGERPRINT}/triage"),
    ("PUT", "/api/v1/control"),
    ("PUT", "/api/v1/control/endpoints/GET%20%2Fv3%2Ftitle"),
)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize(("method", "path"), ADMIN_WRITES)
async def test_oversized_admin_bodies_are_413(
    upstream: StartUpstream,
    proxy: StartProxy,
    client: aiohttp.ClientSession,
    redis_server: RedisServer,
    framing: str,
    method: str,
    path: str,
) -> None:
    """A 10 MB body to any admin call that takes one (triage, the control plane's switches) is
    refused with 413, whether or not it announces its length, and the listener keeps serving."""
    backend = await upstream(healthy_app())
    running = await proxy(backend, backend, control=redis_server.url)
    body = b'{"state": "open", "note": "' + b"x" * (10 * 1024 * 1024) + b'"}'

    async def chunks() -> object:
        for start in range(0, len(body), 1 << 20):
            yield body[start : start + (1 << 20)]

    data: object = io.BytesIO(body) if framing == "content-length" else chunks()
    try:
        status = await status_of(client, method, running.admin_url + path, None, data=data)
    except aiohttp.ClientOSError:
        status = -1
    assert 413 == status
    assert 200 == await status_of(client, "GET", running.admin_url + "/api/v1/summary", None)
