"""``--workers N``: N serving processes on one port, one admin listener summing their metrics."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from shadowproxy.metrics import merge_expositions
from tests.conftest import StartUpstream
from tests.servers import free_port


def test_merge_sums_counters_and_histograms() -> None:
    one = (
        "# HELP shadowproxy_comparisons_total Comparisons.\n"
        "# TYPE shadowproxy_comparisons_total counter\n"
        'shadowproxy_comparisons_total{endpoint="GET /x",verdict="match"} 3.0\n'
        'shadowproxy_comparisons_created{endpoint="GET /x",verdict="match"} 1.7e9\n'
        "# HELP shadowproxy_queue_depth Waiting.\n"
        "# TYPE shadowproxy_queue_depth gauge\n"
        "shadowproxy_queue_depth 2.0\n"
    )
    two = one.replace("} 3.0", "} 4.0").replace("depth 2.0", "depth 5.0")
    merged = merge_expositions([one, two]).decode()
    assert 'shadowproxy_comparisons_total{endpoint="GET /x",verdict="match"} 7.0' in merged
    assert "shadowproxy_queue_depth 7.0" in merged
    assert "_created" not in merged
    assert "# TYPE shadowproxy_comparisons_total counter" in merged


def merged_gauge(name: str, first: float, second: float) -> str:
    """Two processes' expositions of one gauge, merged."""
    one, two = (f"# HELP {name} x\n# TYPE {name} gauge\n{name} {v!r}\n" for v in (first, second))
    return merge_expositions([one, two]).decode()


@pytest.mark.parametrize(
    ("name", "first", "second", "fleet"),
    [
        # A share or a ratio per process does not add up: two processes each mirroring half
        # their requests mirror half of the fleet's.
        ("shadowproxy_mirror_share", 0.5, 0.25, 0.375),
        ("shadowproxy_loop_busy_ratio", 0.9, 0.7, 0.8),
        ("shadowproxy_cpu_pressure_ratio", 0.4, 0.4, 0.4),
        ("shadowproxy_loop_lag_seconds", 0.002, 0.001, 0.0015),
        # Nor does a start time or a limit: the earliest start, the tightest limit.
        ("process_start_time_seconds", 1700000100.0, 1700000000.0, 1700000000.0),
        ("process_max_fds", 1024.0, 4096.0, 1024.0),
        # Memory and descriptors do.
        ("process_resident_memory_bytes", 100.0, 50.0, 150.0),
        ("process_open_fds", 10.0, 12.0, 22.0),
    ],
)
def test_merge_of_per_process_gauges(name: str, first: float, second: float, fleet: float) -> None:
    assert f"{name} {fleet!r}" in merged_gauge(name, first, second)


def json_backend() -> web.Application:
    async def title(request: web.Request) -> web.Response:
        return web.json_response(
            {"id": int(request.query.get("id", "1")), "names": {"ru": "Клинок"}}
        )

    app = web.Application()
    app.router.add_get("/v3/title", title)
    return app


@pytest.fixture
async def fleet(
    tmp_path: Path, upstream: StartUpstream
) -> AsyncIterator[tuple[str, str, subprocess.Popen[str]]]:
    primary = await upstream(json_backend())
    shadow = await upstream(json_backend())
    traffic, admin = free_port(), free_port()
    log = (tmp_path / "fleet.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shadowproxy",
            "run",
            "--workers",
            "2",
            "--primary",
            primary,
            "--shadow",
            shadow,
            "--listen",
            f"127.0.0.1:{traffic}",
            "--admin-listen",
            f"127.0.0.1:{admin}",
            "--store",
            f"sqlite:///{tmp_path / 'fleet.db'}",
            "--store-flush-interval",
            "0.05",
            # Every request must be compared: no shedding for a test machine busy starting the
            # fleet (the governor is tested in tests/proxy/test_governor.py).
            "--mirror-lag-max",
            "0",
        ],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
    )
    admin_url = f"http://127.0.0.1:{admin}"
    async with aiohttp.ClientSession() as client:
        for _ in range(300):
            try:
                async with client.get(admin_url + "/healthz") as response:
                    if (await response.json())["workers"]["answering"] == 2:
                        break
            except (aiohttp.ClientError, KeyError):
                pass
            assert process.poll() is None, (tmp_path / "fleet.log").read_text()
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the fleet did not come up")
    yield f"http://127.0.0.1:{traffic}", admin_url, process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        log.close()


async def sample(client: aiohttp.ClientSession, admin_url: str, name: str) -> float:
    async with client.get(admin_url + "/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_two_workers_serve_and_one_metrics_endpoint_sums_them(
    fleet: tuple[str, str, subprocess.Popen[str]],
) -> None:
    traffic_url, admin_url, _ = fleet
    name = 'shadowproxy_comparisons_total{endpoint="GET /v3/title",verdict="match"}'
    # A new connection per request, so the kernel spreads them over both listening sockets.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as client:
        for i in range(40):
            async with client.get(f"{traffic_url}/v3/title?id={i}") as response:
                assert 200 == response.status
        for _ in range(100):
            if await sample(client, admin_url, name) == 40:
                break
            await asyncio.sleep(0.1)
        assert 40.0 == await sample(client, admin_url, name)
        async with client.get(admin_url + "/healthz") as response:
            health = await response.json()
    assert {"expected": 2, "answering": 2} == health["workers"]


async def test_a_dead_worker_is_replaced(fleet: tuple[str, str, subprocess.Popen[str]]) -> None:
    traffic_url, admin_url, supervisor = fleet
    children = subprocess.run(
        ["pgrep", "-P", str(supervisor.pid), "-f", "multiprocessing"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert len(children) >= 2
    os.kill(int(children[0]), signal.SIGKILL)
    async with aiohttp.ClientSession() as client:
        answering = 0
        for _ in range(200):
            await asyncio.sleep(0.1)
            async with client.get(admin_url + "/healthz") as response:
                answering = (await response.json())["workers"]["answering"]
            if answering == 2:
                break
        assert 2 == answering
        async with client.get(f"{traffic_url}/v3/title?id=1") as response:
            assert 200 == response.status
