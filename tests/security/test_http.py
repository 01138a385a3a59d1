"""Malformed and smuggling-shaped HTTP from clients: a 4xx from the proxy, nothing forwarded, and
the next client served. Extends tests/proxy/test_ingress.py (absolute-form, CONNECT, asterisk, bad
method, Content-Length with Transfer-Encoding, huge header, body over the limit)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.conftest import StartProxy, StartUpstream
from tests.proxy.test_ingress import (
    HITS,
    assert_refused_and_still_serving,
    raw_exchange,
    recording_backend,
)

HEAD = b"Host: a\r\n"

CASES = {
    "duplicate-content-length": b"POST /x HTTP/1.1\r\n" + HEAD
    + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "content-length-list": b"POST /x HTTP/1.1\r\n" + HEAD + b"Content-Length: 5, 6\r\n\r\nhello!",
    "content-length-sign": b"POST /x HTTP/1.1\r\n" + HEAD + b"Content-Length: +5\r\n\r\nhello",
    "content-length-negative": b"POST /x HTTP/1.1\r\n" + HEAD + b"Content-Length: -1\r\n\r\n",
    "content-length-hex": b"POST /x HTTP/1.1\r\n" + HEAD + b"Content-Length: 0x5\r\n\r\nhello",
    "transfer-encoding-unknown": b"POST /x HTTP/1.1\r\n" + HEAD
    + b"Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "transfer-encoding-not-last": b"POST /x HTTP/1.1\r\n" + HEAD
    + b"Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "space-before-colon": b"POST /x HTTP/1.1\r\n" + HEAD
    + b"Transfer-Encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "chunk-size-overflow": b"POST /x HTTP/1.1\r\n" + HEAD
    + b"Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n",
    "chunk-size-garbage": b"POST /x HTTP/1.1\r\n" + HEAD
    + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "obs-fold": b"GET /x HTTP/1.1\r\n" + HEAD + b"X-Folded: a\r\n b\r\n\r\n",
    "nul-in-value": b"GET /x HTTP/1.1\r\n" + HEAD + b"X-Nul: a\x00b\r\n\r\n",
    "nul-in-name": b"GET /x HTTP/1.1\r\n" + HEAD + b"X-N\x00ul: ab\r\n\r\n",
    "cr-in-value": b"GET /x HTTP/1.1\r\n" + HEAD + b"X-Cr: a\rb\r\n\r\n",
    "space-in-name": b"GET /x HTTP/1.1\r\n" + HEAD + b"X Y: 1\r\n\r\n",
    "no-colon": b"GET /x HTTP/1.1\r\n" + HEAD + b"NoColonHere\r\n\r\n",
    "space-in-target": b"GET /a b HTTP/1.1\r\n" + HEAD + b"\r\n",
    "nul-in-target": b"GET /a\x00b HTTP/1.1\r\n" + HEAD + b"\r\n",
    "very-long-uri": b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n" + HEAD + b"\r\n",
    "bad-version": b"GET /x HTTP/9.9\r\n" + HEAD + b"\r\n",
    "lowercase-method": b"get /x HTTP/1.1\r\n" + HEAD + b"\r\n",
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
async def test_malformed_request_is_refused_and_not_forwarded(
    upstream: StartUpstream, proxy: StartProxy, name: str
) -> None:
    """A 4xx (400, 414, 431 or 501) from the proxy itself; neither backend sees anything; the
    proxy serves the next client."""
    primary, shadow = recording_backend(), recording_backend()
    running = await proxy(await upstream(primary), await upstream(shadow))
    answer = await raw_exchange(running.traffic_url, CASES[name])
    status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.") else answer[:40]
    assert status in {b"400", b"414", b"431", b"501"}, answer[:200]
    await assert_refused_and_still_serving(running, primary, shadow)


async def test_pipelined_request_after_a_chunked_body_is_its_own_request(
    upstream: StartUpstream, proxy: StartProxy
) -> None:
    """Bytes after the terminating chunk are the next request, parsed and forwarded as such: the
    primary sees the same two requests the proxy did, so no request hides in another's body."""
    primary = recording_backend()
    running = await proxy(await upstream(primary), await upstream(recording_backend()))
    smuggle = (
        b"POST /first HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n"
        b"GET /second HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    host, port = running.traffic_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(smuggle)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert 2 == answer.count(b"HTTP/1.1 200 OK")
    assert ["POST /first", "GET /second"] == primary[HITS]


SECRET = "PLANTsecretQ1x9"
MALFORMED_WITH_SECRETS = (
    b"GET /x?token=" + SECRET.encode() + b" HTTP/9.9\r\nHost: a\r\n\r\n",
    b"GET /x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + SECRET.encode() + b"\x00\r\n\r\n",
    b"GET /x?token=" + SECRET.encode() + b"&" + b"a" * 20000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
)


async def test_malformed_requests_leave_no_secret_in_the_log(
    upstream: StartUpstream, proxy: StartProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused request's token or credentials do not reach the log, at any level: the
    parser's error names the problem, not the bytes around it."""
    caplog.set_level(logging.DEBUG)
    running = await proxy(await upstream(recording_backend()), await upstream(recording_backend()))
    for request in MALFORMED_WITH_SECRETS:
        answer = await raw_exchange(running.traffic_url, request)
        assert answer.split(b" ", 2)[1] in {b"400", b"414", b"431"}, answer[:100]
    assert caplog.records  # the refusals were logged
    assert SECRET not in caplog.text
