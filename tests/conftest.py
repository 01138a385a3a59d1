"""Shared fixtures: real upstream servers on 127.0.0.1 and real proxies in front of them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from shadowproxy.server import RunningProxy, running
from shadowproxy.settings import HostPort, Settings
from tests.servers import redis_server  # noqa: F401 - a fixture for every test folder

StartUpstream = Callable[[web.Application], Awaitable[str]]
StartProxy = Callable[..., Awaitable[RunningProxy]]


@pytest.fixture
async def upstream() -> AsyncIterator[StartUpstream]:
    """Start an aiohttp app on a free 127.0.0.1 port; returns its base URL."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


def test_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a proxy on free loopback ports with its store in ``tmp_path``."""
    base = Settings(
        listen=HostPort("127.0.0.1", 0),
        admin_listen=HostPort("127.0.0.1", 0),
        store=f"sqlite:///{tmp_path / 'store.db'}",
        store_flush_interval=0.05,
        # Upstreams, clients and proxy share the test's loop, so its backlog says nothing about
        # the proxy: the governor would shed what tests count. Its own tests turn it on.
        mirror_lag_max=0.0,
    )
    return replace(base, **overrides)


test_settings.__test__ = False  # type: ignore[attr-defined]  # a factory, not a test


@pytest.fixture
async def proxy(tmp_path: Path) -> AsyncIterator[StartProxy]:
    """Start a proxy: ``await proxy(primary_url, shadow_url, **settings)``."""
    async with AsyncExitStack() as stack:

        async def start(primary: str, shadow: str, **overrides: Any) -> RunningProxy:
            settings = test_settings(tmp_path, primary=primary, shadow=shadow, **overrides)
            return await stack.enter_async_context(running(settings))

        yield start


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that shows bytes as sent: no decompression, no redirects, no cookie jar."""
    async with aiohttp.ClientSession(
        auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        yield session
