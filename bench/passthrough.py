"""The minimal aiohttp pass-through proxy: the reference for what one Python process can forward.

No mirror, no capture, no header filtering beyond what aiohttp does: read the primary's whole
answer and send it back. One process, one pooled ``ClientSession``::

    .venv/bin/python bench/passthrough.py --upstream http://127.0.0.1:8081 --port 8080
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


async def _session(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), auto_decompress=False
    ) as session:
        app[SESSION] = session
        yield


async def _forward(request: web.Request) -> web.Response:
    app = request.app
    data = await request.read() if request.body_exists else None
    async with app[SESSION].request(
        request.method, app[UPSTREAM] + request.raw_path, data=data, allow_redirects=False
    ) as upstream:
        body = await upstream.read()
        return web.Response(
            status=upstream.status,
            body=body,
            headers={"Content-Type": upstream.headers.get("Content-Type", "application/json")},
        )


def create_app(upstream: str) -> web.Application:
    """One catch-all route forwarding to ``upstream``."""
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(_session)
    app.router.add_route("*", "/{tail:.*}", _forward)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="minimal aiohttp pass-through proxy")
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(
        create_app(args.upstream), host="127.0.0.1", port=args.port, access_log=None, print=None
    )


if __name__ == "__main__":
    main()
