"""Fault fixtures: ``fault(name)`` starts the named misbehaving backend and returns its URL."""

from __future__ import annotations

import gc
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack

import pytest

from tests.conftest import StartUpstream
from tests.reliability import faults

StartFault = Callable[[str], Awaitable[str]]
RecordFigure = Callable[[str, object], None]

FAULTS = ("refuses", "hangs", "resets", "garbage", "huge", "drips", "errors", "lying_gzip")


@pytest.fixture
async def fault(upstream: StartUpstream) -> AsyncIterator[StartFault]:
    """Start a backend with the named fault (one of :data:`FAULTS`, or ``healthy``)."""
    async with AsyncExitStack() as stack:

        async def start(name: str) -> str:
            apps = {
                "healthy": faults.healthy_app,
                "huge": faults.huge_app,
                "drips": faults.drip_app,
                "errors": faults.error_app,
                "lying_gzip": faults.lying_gzip_app,
            }
            if name in apps:
                return await upstream(apps[name]())
            if name == "refuses":
                return await stack.enter_async_context(faults.refusing_url())
            handler = {
                "hangs": faults.hang_handler,
                "resets": faults.reset_handler,
                "garbage": faults.garbage_handler,
            }[name]
            server = await stack.enter_async_context(faults.raw_server(handler))
            return server.url

        yield start


@pytest.fixture
def record_figure(request: pytest.FixtureRequest) -> RecordFigure:
    """Keep a measured figure with the test's report (``--junitxml ... -o junit_family=legacy``
    writes them out; docs/RELIABILITY.md quotes them). Unlike ``record_property`` it never warns."""

    def record(name: str, value: object) -> None:
        request.node.user_properties.append((name, value))

    return record


@pytest.fixture
def pymongo_sockets() -> Iterator[None]:
    """Collect, after the proxy is gone, the sockets of MongoDB connection attempts that an outage
    cut short: PyMongo's async client leaves them to the garbage collector (which closes them),
    and one collected at session end would fail the whole run with a ResourceWarning."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
