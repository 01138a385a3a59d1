"""``shadowproxy worker`` as a real process: killed mid-batch, stopped gracefully, bad flags."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from shadowproxy.cli import main
from shadowproxy.model import Verdict
from shadowproxy.queue import QueueError, RedisStream
from tests.polling import eventually
from tests.queue.traffic import expected_verdicts
from tests.servers import RedisServer
from tests.workers import (
    GROUP,
    STREAM,
    StoreLock,
    all_acked,
    opened_store,
    publish,
    settings_for,
    stored_ids,
    stream_fixture,  # noqa: F401 - the `stream` fixture
    verdict_totals,
    working,
)

REPO = Path(__file__).resolve().parents[2]


async def start_worker(
    redis: RedisServer, tmp_path: Path, *flags: str
) -> asyncio.subprocess.Process:
    """``python -m shadowproxy worker`` on the test's Redis and SQLite file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWPROXY_")}
    env |= {"PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shadowproxy",
        "worker",
        "--queue",
        redis.url,
        "--store",
        f"sqlite:///{tmp_path / 'store.db'}",
        "--stream",
        STREAM,
        "--group",
        GROUP,
        *flags,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def holding(stream: RedisStream, consumer: str, count: int) -> bool:
    """``consumer`` has read ``count`` entries and acknowledged none of them."""
    try:
        pending = await stream.pending(GROUP)
    except QueueError:  # no group yet: the worker creates it once it is up
        return False
    return pending.by_consumer.get(consumer) == count


async def test_worker_killed_mid_batch_loses_nothing_and_doubles_nothing(
    redis_server: RedisServer, stream: RedisStream, tmp_path: Path
) -> None:
    """A worker process is SIGKILLed after reading a batch and before acknowledging it (its store
    write is stuck behind another writer's lock). A second worker claims the batch and reads the
    rest: every exchange is stored and counted exactly once."""
    async with opened_store(tmp_path):
        pass
    await publish(redis_server, 40)
    lock = StoreLock(tmp_path / "store.db")
    doomed = await start_worker(redis_server, tmp_path, "--consumer", "doomed", "--batch", "25")
    try:

        async def stuck_mid_batch() -> bool:
            return await holding(stream, "doomed", 25)

        await eventually(stuck_mid_batch, timeout=30)
    finally:
        doomed.send_signal(signal.SIGKILL)
        await doomed.wait()
        lock.release()
    assert -signal.SIGKILL == doomed.returncode
    settings = settings_for(redis_server, tmp_path, consumer="rescuer", claim_idle=0.3)
    async with working(settings) as rescuer:

        async def done() -> bool:
            return await all_acked(rescuer, stream, 40)

        await eventually(done, timeout=30)
    assert (25, 15) == (rescuer.stats().claimed, rescuer.stats().read)
    expected = expected_verdicts(40)
    async with opened_store(tmp_path) as store:
        assert dict(expected) == await verdict_totals(store)
        ids = await stored_ids(store)
    assert len(ids) == len(set(ids)) == 40 - expected[Verdict.MATCH]


async def test_sigterm_finishes_the_batch_in_hand_then_exits(
    redis_server: RedisServer, stream: RedisStream, tmp_path: Path
) -> None:
    """SIGTERM while a batch waits on the store: once the store accepts, the batch is written and
    acknowledged, and the process exits 0."""
    async with opened_store(tmp_path):
        pass
    await publish(redis_server, 30)
    lock = StoreLock(tmp_path / "store.db")
    polite = await start_worker(
        redis_server, tmp_path, "--consumer", "polite", "--batch", "30", "--stop-grace", "60"
    )
    try:

        async def stuck_mid_batch() -> bool:
            return await holding(stream, "polite", 30)

        await eventually(stuck_mid_batch, timeout=30)
        polite.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        assert polite.returncode is None
    finally:
        lock.release()
    _, err = await asyncio.wait_for(polite.communicate(), timeout=30)
    assert 0 == polite.returncode, err.decode()
    assert 0 == (await stream.pending(GROUP)).total
    async with opened_store(tmp_path) as store:
        assert dict(expected_verdicts(30)) == await verdict_totals(store)


def test_queue_is_required(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without --queue (or SHADOWPROXY_QUEUE) the command says what is missing and exits 2."""
    monkeypatch.delenv("SHADOWPROXY_QUEUE", raising=False)
    assert 2 == main(["worker", "--store", f"sqlite:///{tmp_path / 'store.db'}"])
    assert "--queue is required" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--queue", "http://127.0.0.1:6379"], "--queue: expected a redis:// or rediss:// URL"),
        (["--queue", "redis://127.0.0.1:1", "--store", "ftp://x/y"], "--store ftp://x/y"),
    ],
    ids=["queue-url", "store-url"],
)
def test_bad_urls_fail_at_start_up(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed queue or store URL is one line naming the flag, and exit status 2."""
    assert 2 == main(["worker", *flags])
    assert message in capsys.readouterr().err
