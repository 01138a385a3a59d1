"""The demo runner in-process: backends, proxy, traffic and summary, against a real SQLite store."""

from __future__ import annotations

import asyncio
import io
import itertools
import re
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from shadowproxy.demo.backends import PLANTED
from shadowproxy.demo.catalogue import build_catalogue
from shadowproxy.demo.runner import DemoOptions, _port_or_any, packaged_rules, run_demo
from shadowproxy.demo.traffic import request_mix
from shadowproxy.settings import HostPort
from shadowproxy.store import open_store
from shadowproxy.store.contract import EndpointSummary

# Only the noise: what differs legitimately on every run. The planted bugs must stay visible.
NOISE_RULES = """\
version: 1
defaults:
  ignore: ["**/in_favorites", "**/took_ms"]
  timestamps: {"**/updated": {tolerance_s: 2}}
endpoints: []
"""


async def stored_fields(database: Path) -> dict[str, set[tuple[str, str]]]:
    """(template, kind) of every field difference the store holds, by endpoint."""
    store = open_store(f"sqlite:///{database}")
    await store.aopen()
    try:
        found: dict[str, set[tuple[str, str]]] = {}
        for field in await store.fields():
            found.setdefault(field.endpoint, set()).add((field.template, field.kind))
        return found
    finally:
        await store.aclose()


class Output(io.StringIO):
    """The demo's output; sets ``stop`` once the opening burst is over, so a test sees all of it
    however slow the machine is."""

    def __init__(self, stop: asyncio.Event) -> None:
        super().__init__()
        self._stop = stop

    def write(self, text: str) -> int:
        if text.startswith("still sending"):
            self._stop.set()
        return super().write(text)


async def stored_summary(database: Path) -> list[EndpointSummary]:
    store = open_store(f"sqlite:///{database}")
    await store.aopen()
    try:
        return await store.summary()
    finally:
        await store.aclose()


def options(tmp_path: Path, **overrides: Any) -> DemoOptions:
    """Quick demo options on free ports, storing in tmp_path, under the noise-only rules."""
    rules = tmp_path / "noise.yaml"
    rules.write_text(NOISE_RULES, encoding="utf-8")
    base = DemoOptions(
        duration=None,
        listen=HostPort("127.0.0.1", 0),
        admin_listen=HostPort("127.0.0.1", 0),
        store=f"sqlite:///{tmp_path / 'demo.db'}",
        rules=rules,
        burst=150,
        rate=10.0,
    )
    return replace(base, **overrides)


async def test_the_store_holds_exactly_the_planted_differences(tmp_path: Path) -> None:
    """With a rule file that silences only the noise, every safe request is compared, 60-80 %
    match, and what the store keeps per endpoint is the planted set: names.jp, announce, rating
    rounding and genre order on titles; string ids in search; a failing status on late update
    pages; nothing on genres and years."""
    stop = asyncio.Event()
    out = Output(stop)
    assert 0 == await run_demo(options(tmp_path), out, stop=stop)
    planned = itertools.islice(request_mix(build_catalogue(), tour_first=True), 150)
    safe = sum(request.method == "GET" for request in planned)
    summary = await stored_summary(tmp_path / "demo.db")
    compared = sum(s.compared for s in summary)
    assert safe == compared
    assert 0.6 <= sum(s.matches for s in summary) / compared <= 0.8
    fields = await stored_fields(tmp_path / "demo.db")
    titles = fields["GET /v3/title"]
    assert {"/names/jp", "/announce", "/rating", "/genres/*"} == {t for t, _ in titles}
    # How a reordered array reads (changed values, or moves as missing plus extra) is the
    # differ's business; the other three have one honest kind each.
    assert {("/names/jp", "extra"), ("/announce", "missing"), ("/rating", "value")} <= titles
    assert ("/list/*/id", "type") in fields["GET /v3/title/search"]
    assert ("/status", "status") in fields["GET /v3/title/updates"]
    assert "GET /v3/genres" not in fields
    assert "GET /v3/years" not in fields
    text = out.getvalue()
    assert len(PLANTED) == len(re.findall(r"^  seen {4}", text, re.MULTILINE))
    assert not re.search(r"^  accepted", text, re.MULTILINE)
    assert text.rstrip().endswith("demo stopped")


async def test_a_busy_loop_costs_the_demo_no_comparison(tmp_path: Path) -> None:
    """The demo's backends, traffic and proxy share one event loop, so its backlog says nothing
    about the proxy: with the loop blocked 4 ms out of every 5, every safe request is still
    compared (the governor, which would shed them, is off in the demo)."""
    stop = asyncio.Event()
    done = asyncio.Event()

    async def hog() -> None:
        while not done.is_set():
            deadline = time.perf_counter() + 0.004
            while time.perf_counter() < deadline:
                pass
            await asyncio.sleep(0.001)

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(hog())
        try:
            # A longer burst than the other tests': time enough for a governor to react.
            assert 0 == await run_demo(options(tmp_path, burst=400), Output(stop), stop=stop)
        finally:
            done.set()
    planned = itertools.islice(request_mix(build_catalogue(), tour_first=True), 400)
    safe = sum(request.method == "GET" for request in planned)
    assert safe == sum(s.compared for s in await stored_summary(tmp_path / "demo.db"))


async def test_a_stop_event_ends_the_demo_and_sessions_are_never_stored(tmp_path: Path) -> None:
    """Setting the stop event (what SIGINT does) ends an unbounded demo with exit code 0. The
    favourites requests carry a session token in the query: stored mismatches show it redacted."""
    stop = asyncio.Event()
    out = Output(stop)
    run = run_demo(options(tmp_path, burst=90, rules=None), out, stop=stop)
    assert 0 == await asyncio.wait_for(run, timeout=60)
    assert "Ctrl-C to stop" in out.getvalue()
    store = open_store(f"sqlite:///{tmp_path / 'demo.db'}")
    await store.aopen()
    try:
        records = (await store.mismatches(endpoint="GET /v3/user/favorites", limit=100)).items
    finally:
        await store.aclose()
    assert records
    for record in records:
        assert "session=[redacted]" in record.target
        assert not re.search(r"[0-9a-f]{32}", record.target)


def test_a_taken_default_port_falls_back_to_a_free_one() -> None:
    """An explicit address is kept; a default one that is taken becomes port 0 (any free)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = HostPort("127.0.0.1", taken.getsockname()[1])
        assert HostPort("127.0.0.1", 0) == _port_or_any(None, busy)
        assert busy == _port_or_any(busy, HostPort("127.0.0.1", 1))


def test_packaged_rules_are_the_anilibria_file() -> None:
    """The demo's default rule file is the AniLibria one shipped beside the package."""
    found = packaged_rules()
    assert found is not None
    assert "anilibria.yaml" == found.name
