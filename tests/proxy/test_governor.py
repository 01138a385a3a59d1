"""The governor: mirroring is sampled down while the serving loop is saturated, back up after."""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from shadowproxy.proxy.governor import (
    BUSY_MAX,
    DECREASE,
    FLOOR,
    INCREASE,
    PRESSURE_MAX,
    PROBE_INTERVAL,
    PSI_CPU,
    WINDOW,
    Governor,
    cpu_stall_seconds,
    idle_seconds,
    pressure_file,
    serving_loop,
)
from shadowproxy.server import RunningProxy
from shadowproxy.tasks import TaskSet
from tests.conftest import StartProxy, StartUpstream

RECOVERY = math.ceil(1 / INCREASE) + 1
"""Windows well under every limit that bring any share back to 1."""


def test_share_falls_fast_while_over_the_limit_and_recovers_slowly() -> None:
    governor = Governor(lag_max=0.001)
    for _ in range(5):
        governor.observe(0.004)
    assert DECREASE**5 == pytest.approx(governor.share)
    for _ in range(50):
        governor.observe(0.004)
    assert FLOOR == governor.share
    governor.observe(0.0005)  # between a quarter of the limit and the limit: held
    assert FLOOR == governor.share
    for _ in range(RECOVERY):
        governor.observe(0.0001)
    assert 1.0 == governor.share


def test_saturation_reaches_the_floor_within_half_a_second_and_recovery_takes_seconds() -> None:
    """The share's time constants, in the loop's own seconds (windows of ``WINDOW`` probes every
    ``PROBE_INTERVAL``): a saturated loop stops mirroring almost at once, since every window
    spent mirroring too much is a window of clients served later; the way back is slower, so a
    load that comes and goes does not swing the share."""
    window = WINDOW * PROBE_INTERVAL
    governor = Governor(lag_max=0.001)
    windows = 0
    while governor.share > FLOOR:
        governor.observe(0.0001, busy=1.0)
        windows += 1
    assert windows * window <= 0.5
    windows = 0
    while governor.share < 1.0:
        governor.observe(0.0001, busy=0.3)
        windows += 1
    assert 1.5 <= windows * window <= 2.5


def test_a_busy_loop_sheds_even_when_each_wait_is_short() -> None:
    governor = Governor(lag_max=0.001)
    for _ in range(5):
        governor.observe(0.0001, busy=0.97)
    assert DECREASE**5 == pytest.approx(governor.share)
    governor.observe(0.0001, busy=0.8)  # under the limit, not yet clear of it: held
    assert DECREASE**5 == pytest.approx(governor.share)
    for _ in range(RECOVERY):
        governor.observe(0.0001, busy=0.5)
    assert 1.0 == governor.share


async def work(seconds: float, each: float) -> None:
    """Keep the loop working for ``seconds``, yielding every ``each`` seconds."""
    deadline = time.perf_counter() + seconds
    while (now := time.perf_counter()) < deadline:
        slice_end = now + each
        while time.perf_counter() < slice_end:
            pass
        await asyncio.sleep(0)


def test_full_cores_shed_even_when_the_loop_keeps_up() -> None:
    governor = Governor(lag_max=0.001)
    governor.observe(0.0001, busy=0.3, pressure=0.6)
    assert DECREASE == pytest.approx(governor.share)
    governor.observe(0.0001, busy=0.3, pressure=0.25)  # under the limit, not clear: held
    assert DECREASE == pytest.approx(governor.share)
    for _ in range(RECOVERY):
        governor.observe(0.0001, busy=0.3, pressure=0.05)
    assert 1.0 == governor.share


def test_a_zero_pressure_limit_ignores_cpu_pressure() -> None:
    governor = Governor(lag_max=0.001, pressure_max=0.0)
    governor.observe(0.0001, busy=0.3, pressure=0.95)
    assert 1.0 == governor.share


def test_cpu_stall_is_read_from_the_kernels_pressure_file(tmp_path: Path) -> None:
    psi = tmp_path / "cpu"
    psi.write_text(
        "some avg10=1.50 avg60=0.80 avg300=0.20 total=2500000\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    )
    assert 2.5 == cpu_stall_seconds(psi)
    assert cpu_stall_seconds(tmp_path / "absent") is None


def test_own_cgroups_pressure_is_preferred_to_the_machines(tmp_path: Path) -> None:
    own = tmp_path / "cgroup"
    own.write_text("12:cpu,cpuacct:/ignored\n0::/system.slice/shadowproxy.service\n")
    unified = tmp_path / "unified"
    service = unified / "system.slice" / "shadowproxy.service"
    service.mkdir(parents=True)
    assert PSI_CPU == pressure_file(own, (tmp_path / "v2", unified))  # no pressure file there
    (service / "cpu.pressure").write_text("some avg10=0.00 avg60=0.00 avg300=0.00 total=7\n")
    assert service / "cpu.pressure" == pressure_file(own, (tmp_path / "v2", unified))
    assert PSI_CPU == pressure_file(tmp_path / "no-such-file")


def spin(seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


@pytest.mark.skipif(
    cpu_stall_seconds(pressure_file()) is None, reason="the kernel reports no CPU pressure"
)
def test_more_runnable_processes_than_cores_shed_mirroring() -> None:
    """Real pressure: two more spinning processes than there are cores. The serving loop itself
    is idle (no backlog, no busy share), yet mirroring is sampled down."""

    async def main() -> tuple[float, float]:
        governor = Governor(lag_max=0.001)
        probe = TaskSet("governor")
        probe.spawn(governor.run())
        context = multiprocessing.get_context("spawn")
        spinners = [
            context.Process(target=spin, args=(2.5,)) for _ in range((os.cpu_count() or 1) + 2)
        ]
        for spinner in spinners:
            spinner.start()
        try:
            lowest, highest = 1.0, 0.0
            deadline = time.perf_counter() + 2.0
            while time.perf_counter() < deadline:
                await asyncio.sleep(0.1)
                lowest = min(lowest, governor.share)
                highest = max(highest, governor.pressure)
        finally:
            for spinner in spinners:
                spinner.join(10)
            await probe.aclose()
        return lowest, highest

    lowest, highest = asyncio.run(main())
    assert highest > PRESSURE_MAX
    assert lowest < 0.5


def test_the_serving_loop_counts_the_time_it_waited() -> None:
    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()

        def idle() -> float:
            seconds = idle_seconds(loop)
            assert seconds is not None
            return seconds

        before = idle()
        await asyncio.sleep(0.2)  # nothing else to do: all of it idle
        waited = idle() - before
        before = idle()
        await work(0.2, 0.001)  # working: none of it idle
        return waited, idle() - before

    with asyncio.Runner(loop_factory=serving_loop) as runner:
        waited, working = runner.run(main())
    assert waited >= 0.18
    assert working < 0.02


def test_a_loop_kept_busy_in_short_slices_sheds_and_recovers() -> None:
    """Work in 0.2 ms slices keeps every wait far under the 1 ms lag limit, yet leaves the loop
    no idle time: the busy share takes mirroring down, and back up once the work stops."""

    async def main() -> tuple[float, float, float]:
        governor = Governor(lag_max=0.001, stall=lambda: None)  # the loop's signals alone
        probe = TaskSet("governor")
        probe.spawn(governor.run())
        await work(1.5, 0.0002)
        saturated, busy = governor.share, governor.busy
        await asyncio.sleep(2.5)
        await probe.aclose()
        return saturated, busy, governor.share

    with asyncio.Runner(loop_factory=serving_loop) as runner:
        saturated, busy, recovered = runner.run(main())
    assert busy > BUSY_MAX
    assert saturated < 0.1
    assert 1.0 == recovered


def test_admission_follows_the_share() -> None:
    draws = iter([0.1, 0.5, 0.9])
    governor = Governor(lag_max=0.001, draw=lambda: next(draws))
    assert governor.admit()  # share 1: no draw taken
    governor.share = 0.5
    assert [True, False, False] == [governor.admit() for _ in range(3)]


async def hog(stop: asyncio.Event) -> None:
    """Block the loop in 5 ms slices, as a saturated proxy's other clients would."""
    while not stop.is_set():
        deadline = time.perf_counter() + 0.005
        while time.perf_counter() < deadline:
            pass
        await asyncio.sleep(0)


def title_app() -> web.Application:
    async def title(request: web.Request) -> web.Response:
        return web.json_response({"id": 1})

    app = web.Application()
    app.router.add_get("/v3/title", title)
    return app


async def skipped(client: aiohttp.ClientSession, running: RunningProxy) -> float:
    async with client.get(running.admin_url + "/metrics") as response:
        text = await response.text()
    name = 'shadowproxy_mirror_skips_total{endpoint="GET /v3/title",reason="serving_busy"} '
    for line in text.splitlines():
        if line.startswith(name):
            return float(line[len(name) :])
    return 0.0


async def share(client: aiohttp.ClientSession, running: RunningProxy) -> float:
    async with client.get(running.admin_url + "/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith("shadowproxy_mirror_share "):
            return float(line.split()[1])
    raise AssertionError("no shadowproxy_mirror_share in /metrics")


async def test_a_saturated_loop_sheds_mirroring_and_recovers(
    upstream: StartUpstream, proxy: StartProxy, client: aiohttp.ClientSession
) -> None:
    """With the loop blocked 5 ms at a time, the share falls to the floor within seconds and
    requests are answered but not mirrored (counted as serving_busy); once the loop is free the
    share climbs back to 1 and every request is mirrored again."""
    running = await proxy(
        await upstream(title_app()), await upstream(title_app()), mirror_lag_max=0.001
    )
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(hog(stop))
        for _ in range(50):
            if await share(client, running) == FLOOR:
                break
            await asyncio.sleep(0.1)
        assert FLOOR == await share(client, running)
        for _ in range(20):
            async with client.get(running.traffic_url + "/v3/title") as response:
                assert 200 == response.status
        stop.set()
    shed = await skipped(client, running)
    assert shed >= 15
    for _ in range(60):
        if await share(client, running) == 1.0:
            break
        await asyncio.sleep(0.1)
    assert 1.0 == await share(client, running)
    for _ in range(10):
        async with client.get(running.traffic_url + "/v3/title") as response:
            assert 200 == response.status
    assert shed == await skipped(client, running)
    assert await running.drain(10)


async def test_a_loop_of_another_making_has_no_idle_reading() -> None:
    assert idle_seconds(asyncio.get_running_loop()) is None


async def test_a_zero_limit_turns_the_governor_off() -> None:
    governor = Governor(lag_max=0.0)
    await asyncio.wait_for(governor.run(), 1.0)  # returns at once: nothing to probe
    assert governor.admit()
    assert 1.0 == governor.share
