"""The traffic driver: a seeded, realistic request mix, sent for real and counted."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web

from shadowproxy.demo.backends import legacy_app
from shadowproxy.demo.catalogue import build_catalogue
from shadowproxy.demo.traffic import drive, request_mix

ROUTES = {
    "/v3/title",
    "/v3/title/list",
    "/v3/title/search",
    "/v3/title/schedule",
    "/v3/title/updates",
    "/v3/genres",
    "/v3/years",
    "/v3/user",
    "/v3/user/favorites",
}


def test_mix_is_seeded_and_covers_every_route() -> None:
    """The same seed gives the same requests; a few hundred cover every route, mostly titles,
    with Cyrillic searches percent-encoded and a few unsafe favourite writes."""
    catalogue = build_catalogue()
    first = list(itertools.islice(request_mix(catalogue, seed=3), 400))
    assert first == list(itertools.islice(request_mix(catalogue, seed=3), 400))
    assert first != list(itertools.islice(request_mix(catalogue, seed=4), 400))
    paths = Counter(urlsplit(r.target).path for r in first)
    assert ROUTES == set(paths)
    assert paths["/v3/title"] > len(first) / 3
    assert all(r.target.isascii() for r in first)
    searches = {parse_qs(urlsplit(r.target).query).get("search", [""])[0] for r in first}
    assert {"атака", "Клинок"} & searches
    methods = Counter(r.method for r in first)
    assert {"GET", "PUT", "DELETE"} == set(methods)
    assert methods["GET"] > 0.95 * len(first)


async def test_drive_sends_the_requested_count(
    aiohttp_server: Callable[[web.Application], Any],
) -> None:
    """With a request count, exactly that many go out; answers are counted by status, mostly 200
    with a few 404 and 412, and nothing fails."""
    server = await aiohttp_server(legacy_app())
    stats = await drive(str(server.make_url("")), duration=None, requests=120, concurrency=3)
    assert 120 == stats.sent
    assert 0 == stats.errors
    assert 120 == sum(stats.by_status.values())
    assert {200, 404, 412} >= set(stats.by_status)
    assert stats.by_status[200] > 100


async def test_drive_stops_at_the_deadline_and_keeps_the_rate(
    aiohttp_server: Callable[[web.Application], Any],
) -> None:
    """With a duration and a rate, the run ends and sends no more than rate x duration (+1)."""
    server = await aiohttp_server(legacy_app())
    stats = await drive(str(server.make_url("")), duration=0.5, requests=None, rate=10.0)
    assert 1 <= stats.sent <= 6
    assert stats.sent == sum(stats.by_status.values()) + stats.errors


async def test_drive_stops_when_told(aiohttp_server: Callable[[web.Application], Any]) -> None:
    """A set stop event ends an unbounded run."""
    server = await aiohttp_server(legacy_app())
    stop = asyncio.Event()
    run = drive(str(server.make_url("")), duration=None, requests=None, rate=50.0, stop=stop)
    asyncio.get_running_loop().call_later(0.3, stop.set)
    stats = await asyncio.wait_for(run, timeout=10)
    assert 1 <= stats.sent


async def test_unreachable_target_counts_errors() -> None:
    """Refused connections are counted as errors, never raised."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    stats = await drive(f"http://127.0.0.1:{port}", duration=None, requests=5, concurrency=2)
    assert (5, 5, {}) == (stats.sent, stats.errors, dict(stats.by_status))


async def test_drive_needs_a_bound() -> None:
    """Without a duration, a count or a stop event the run would never end: refused."""
    with pytest.raises(ValueError, match="needs a duration"):
        await drive("http://127.0.0.1:1", duration=None, requests=None)


def test_tour_visits_every_route_then_every_title_first() -> None:
    """With tour_first, every route is visited once, then every title by id, before the random
    mix: routes first, so a short run has seen every endpoint."""
    catalogue = build_catalogue()
    planned = list(
        itertools.islice(request_mix(catalogue, tour_first=True), len(catalogue.titles) + 13)
    )
    targets = [urlsplit(r.target) for r in planned]
    ids = {
        int(parse_qs(t.query)["id"][0])
        for t in targets
        if t.path == "/v3/title" and "id=" in t.query
    }
    assert set(catalogue.by_id) == ids
    assert ROUTES == {t.path for t in targets}
    assert any("page=3" in t.query for t in targets)
    assert "PUT" == planned[12].method
    assert ROUTES == {t.path for t in targets[:13]}
