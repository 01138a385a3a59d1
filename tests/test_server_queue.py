"""A proxy run with --queue publishes to Redis; a worker compares and stores every exchange once."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from shadowproxy.model import Verdict
from shadowproxy.queue import DEFAULT_STREAM, RedisStream
from tests.conftest import StartProxy, StartUpstream
from tests.factories import title_document
from tests.polling import eventually
from tests.servers import RedisServer
from tests.workers import all_acked, opened_store, settings_for, verdict_totals, working


def catalogue(rating: float) -> web.Application:
    async def title(request: web.Request) -> web.Response:
        doc = title_document(int(request.query.get("id", "1")), rating=rating)
        return web.Response(body=orjson.dumps(doc), content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v1/title", title)
    return app


async def test_proxy_with_queue_publishes_and_a_worker_stores(
    redis_server: RedisServer,
    upstream: StartUpstream,
    proxy: StartProxy,
    client: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    """20 mirrored requests are published, not compared locally; a worker writes all 20 to the
    store the proxy reads, once each."""
    primary = await upstream(catalogue(8.7))
    shadow = await upstream(catalogue(8.6))
    running = await proxy(primary, shadow, queue=redis_server.url)
    for i in range(20):
        async with client.get(f"{running.traffic_url}/api/v1/title?id={i}") as response:
            assert 200 == response.status
    assert await running.drain(10)
    publisher = running.runtime.publisher
    assert publisher is not None
    assert 20 == publisher.stats().published
    settings = settings_for(redis_server, tmp_path, stream=DEFAULT_STREAM)
    stream = RedisStream(redis_server.url, DEFAULT_STREAM)
    async with working(settings) as worker:

        async def done() -> bool:
            return await all_acked(worker, stream, 20)

        await eventually(done)
    await stream.aclose()
    async with opened_store(tmp_path) as store:
        assert {Verdict.MISMATCH: 20} == await verdict_totals(store)
