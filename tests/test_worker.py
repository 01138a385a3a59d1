"""The worker against a real Redis and a real SQLite store: each exchange compared and stored once."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from shadowproxy.model import Verdict
from shadowproxy.queue import RedisStream, encode_exchange
from shadowproxy.settings import HostPort
from shadowproxy.store import open_store
from shadowproxy.worker import WorkerStartupError, open_worker
from tests.polling import eventually
from tests.queue.traffic import exchanges, expected_verdicts
from tests.servers import RedisServer, free_port
from tests.store.conftest import start_mongo
from tests.workers import (
    GROUP,
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


async def test_every_exchange_is_compared_and_stored_once(
    redis_server: RedisServer, stream: RedisStream, tmp_path: Path
) -> None:
    """60 published exchanges: all compared with the right verdicts, counted once, mismatches and
    shadow errors stored once each, every entry acknowledged."""
    await publish(redis_server, 60)
    async with working(settings_for(redis_server, tmp_path)) as worker:

        async def done() -> bool:
            return worker.stats().acked == 60

        await eventually(done)
    stats = worker.stats()
    assert (60, 60, 60, 0) == (stats.read, stats.compared, stats.written, stats.store_errors)
    assert 0 == (await stream.pending(GROUP)).total
    async with opened_store(tmp_path) as store:
        assert dict(expected_verdicts(60)) == await verdict_totals(store)
        ids = await stored_ids(store)
    assert 40 == len(ids) == len(set(ids))


async def test_the_same_exchange_twice_is_stored_once(
    redis_server: RedisServer, stream: RedisStream, tmp_path: Path
) -> None:
    """A publisher retry can append an exchange again: the second copy is compared, acknowledged,
    and changes nothing in the store."""
    sent = exchanges(30)
    entries = [encode_exchange(exchange, "v") for exchange in sent]
    await stream.append(entries, maxlen=1000)
    await stream.append(entries, maxlen=1000)
    async with working(settings_for(redis_server, tmp_path)) as worker:

        async def done() -> bool:
            return worker.stats().acked == 60

        await eventually(done)
    async with opened_store(tmp_path) as store:
        assert dict(expected_verdicts(30)) == await verdict_totals(store)
        ids = await stored_ids(store)
    assert 20 == len(ids) == len(set(ids))


async def test_store_down_keeps_entries_pending_until_it_is_back(
    redis_server: RedisServer, stream: RedisStream, tmp_path: Path
) -> None:
    """While the store refuses writes nothing is acknowledged and the worker keeps retrying; once
    the store accepts again, everything is stored and acknowledged."""
    async with opened_store(tmp_path):
        pass  # the schema exists before the lock is taken
    await publish(redis_server, 15)
    lock = StoreLock(tmp_path / "store.db")
    async with working(settings_for(redis_server, tmp_path, batch=50)) as worker:

        async def failing() -> bool:
            return worker.stats().store_errors > 0

        await eventually(failing, timeout=30)
        assert 15 == (await stream.pending(GROUP)).total
        assert (0, False) == (worker.stats().acked, worker.stats().store_up)
        lock.release()

        async def caught_up() -> bool:
            return await all_acked(worker, stream, 15)

        await eventually(caught_up, timeout=30)
    assert worker.stats().store_up
    async with opened_store(tmp_path) as store:
        assert dict(expected_verdicts(15)) == await verdict_totals(store)


async def test_a_dead_workers_pending_entries_are_claimed(
    redis_server: RedisServer, stream: RedisStream, tmp_path: Path
) -> None:
    """Entries read by a consumer that never acknowledged them are taken over after claim_idle
    and stored; nothing lost, nothing doubled."""
    await publish(redis_server, 25)
    await stream.ensure_group(GROUP)
    taken = await stream.read(GROUP, "dead", count=10, block=0.1)
    assert 10 == len(taken)
    settings = settings_for(redis_server, tmp_path, consumer="alive", claim_idle=0.2)
    async with working(settings) as worker:

        async def done() -> bool:
            return await all_acked(worker, stream, 25)

        await eventually(done)
    assert (15, 10) == (worker.stats().read, worker.stats().claimed)
    async with opened_store(tmp_path) as store:
        assert dict(expected_verdicts(25)) == await verdict_totals(store)
        assert 17 == len(set(await stored_ids(store)))


async def test_a_restarted_worker_resumes_its_own_pending_at_once(
    redis_server: RedisServer, stream: RedisStream, tmp_path: Path
) -> None:
    """Same consumer name after a crash: its unacknowledged entries are processed first, without
    waiting for claim_idle."""
    await publish(redis_server, 12)
    await stream.ensure_group(GROUP)
    await stream.read(GROUP, "w1", count=5, block=0.1)
    async with working(settings_for(redis_server, tmp_path, claim_idle=3600)) as worker:

        async def done() -> bool:
            return await all_acked(worker, stream, 12)

        await eventually(done)
    assert (7, 5) == (worker.stats().read, worker.stats().claimed)


async def test_undecodable_entries_are_dropped_and_counted(
    redis_server: RedisServer, stream: RedisStream, tmp_path: Path
) -> None:
    """An entry from a newer proxy or a stray writer is acknowledged and counted, and does not
    hold up the exchanges around it."""
    await stream.append([encode_exchange(exchanges(1)[0], "v")], maxlen=100)
    await stream.append([{"v": b"9", "exchange": b"{}"}, {"junk": b"yes"}], maxlen=100)
    await stream.append([encode_exchange(exchanges(1, start=1)[0], "v")], maxlen=100)
    async with working(settings_for(redis_server, tmp_path)) as worker:

        async def done() -> bool:
            return await all_acked(worker, stream, 4)

        await eventually(done)
    assert (2, 2) == (worker.stats().undecodable, worker.stats().written)


async def test_the_workers_rules_decide_and_the_proxys_endpoint_name_stays(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Comparisons run under the worker's rule file, resolved by method and path (here it ignores
    the fields the shadow gets wrong); the endpoint keeps the proxy's name; a ruleset version
    unlike the proxy's is counted."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: 1\n"
        "endpoints:\n"
        "  - name: titles.one\n"
        "    match: {method: GET, path: /api/v1/title}\n"
        "    ignore: [/rating, /genres]\n",
        encoding="utf-8",
    )
    await publish(redis_server, 1)
    async with working(settings_for(redis_server, tmp_path, rules=rules)) as worker:

        async def done() -> bool:
            return worker.stats().acked == 1

        await eventually(done)
    assert 1 == worker.stats().rules_differ
    async with opened_store(tmp_path) as store:
        summary = await store.summary()
    assert [("GET /api/v1/title", 1, 0)] == [
        (row.endpoint, row.matches, row.mismatches) for row in summary
    ]


async def test_metrics_are_served_and_count_comparisons(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """/metrics counts comparisons by endpoint and verdict; /healthz says both ends are up."""
    await publish(redis_server, 6)
    port = free_port()
    settings = settings_for(redis_server, tmp_path, metrics_listen=HostPort("127.0.0.1", port))
    async with working(settings) as worker, aiohttp.ClientSession() as session:

        async def done() -> bool:
            return worker.stats().acked == 6

        await eventually(done)
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
        async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
            health = await response.json()
    assert (
        'shadowproxy_comparisons_total{endpoint="GET /api/v1/title",verdict="mismatch"} 2.0' in text
    )
    assert "shadowproxy_worker_acked_entries_total 6.0" in text
    assert {"ok": True, "queue_up": True, "store_up": True, "last_error": None} == health


async def test_bad_rules_fail_at_start_up(redis_server: RedisServer, tmp_path: Path) -> None:
    """An invalid rule file stops the worker before it reads anything, naming the file."""
    rules = tmp_path / "bad.yaml"
    rules.write_text("version: 1\nendpoints: 7\n", encoding="utf-8")
    with pytest.raises(WorkerStartupError, match=r"bad\.yaml"):
        async with open_worker(settings_for(redis_server, tmp_path, rules=rules)):
            pass


async def test_redis_restarted_empty_the_worker_joins_again(
    redis_server: RedisServer, stream: RedisStream, tmp_path: Path
) -> None:
    """Redis goes away and comes back without its data (no persistence): the worker says Redis
    was down, recreates its group, and compares what proxies publish afterwards."""
    await publish(redis_server, 6)
    async with working(settings_for(redis_server, tmp_path)) as worker:

        async def first_done() -> bool:
            return worker.stats().acked == 6

        await eventually(first_done)
        redis_server.stop()

        async def noticed() -> bool:
            return not worker.stats().queue_up

        await eventually(noticed)
        redis_server.start()
        await publish(redis_server, 6, start=6)

        async def second_done() -> bool:
            return worker.stats().acked == 12

        await eventually(second_done)
        assert worker.stats().queue_up
    async with opened_store(tmp_path) as store:
        assert dict(expected_verdicts(12)) == await verdict_totals(store)


async def test_an_entry_that_keeps_killing_workers_is_set_aside(
    redis_server: RedisServer, stream: RedisStream, tmp_path: Path
) -> None:
    """An entry taken over more than max_deliveries times is not compared again: it is stored as
    skipped with reason poison (so it is counted), acknowledged, and the rest flows on."""
    await publish(redis_server, 4)
    await stream.ensure_group(GROUP)
    first = (await stream.read(GROUP, "crashed-1", count=1, block=0.1))[0]
    for crashed in ("crashed-2", "crashed-3"):
        assert [first] == list((await stream.claim(GROUP, crashed, min_idle=0, count=1)).entries)
    settings = settings_for(redis_server, tmp_path, claim_idle=0.05, max_deliveries=3)
    async with working(settings) as worker:

        async def done() -> bool:
            return await all_acked(worker, stream, 4)

        await eventually(done)
    assert (1, 4) == (worker.stats().poisoned, worker.stats().written)
    expected = expected_verdicts(4)
    expected[Verdict.SKIPPED] += 1
    expected[Verdict.MISMATCH] -= 1  # the poisoned one, first published, was a mismatch
    async with opened_store(tmp_path) as store:
        assert dict(+expected) == await verdict_totals(store)


async def test_a_worker_crash_looping_on_its_own_entry_sets_it_aside(
    redis_server: RedisServer, stream: RedisStream, tmp_path: Path
) -> None:
    """A worker restarted under the same name takes its own pending entries back as a new
    delivery, so an entry that crashed it on every start is set aside as poison too."""
    await publish(redis_server, 3)
    await stream.ensure_group(GROUP)
    (first,) = await stream.read(GROUP, "w1", count=1, block=0.1)
    for _ in range(2):  # two earlier starts that died on it
        await stream.reclaim(GROUP, "w1", [first.id])
    async with working(settings_for(redis_server, tmp_path, max_deliveries=3)) as worker:

        async def done() -> bool:
            return await all_acked(worker, stream, 3)

        await eventually(done)
    assert (1, 1, 2) == (worker.stats().poisoned, worker.stats().claimed, worker.stats().read)


async def test_claims_and_duplicates_stay_exact_on_mongodb(
    redis_server: RedisServer, stream: RedisStream, tmp_path: Path
) -> None:
    """The production store: a dead consumer's entries claimed and a publisher's duplicate
    appends still give every exchange counted once and stored once on MongoDB."""
    mongo = start_mongo()
    try:
        url = f"mongodb://127.0.0.1:{mongo.port}/sp_worker"
        sent = exchanges(30)
        entries = [encode_exchange(exchange, "v") for exchange in sent]
        await stream.append(entries, maxlen=1000)
        await stream.ensure_group(GROUP)
        assert 12 == len(await stream.read(GROUP, "dead", count=12, block=0.1))
        await stream.append(entries[:10], maxlen=1000)
        settings = settings_for(redis_server, tmp_path, store=url, claim_idle=0.1)
        async with working(settings) as worker:

            async def done() -> bool:
                return await all_acked(worker, stream, 40)

            await eventually(done)
        store = open_store(url)
        await store.aopen()
        try:
            assert dict(expected_verdicts(30)) == await verdict_totals(store)
            ids = await stored_ids(store)
        finally:
            await store.aclose()
        assert 20 == len(ids) == len(set(ids))
    finally:
        mongo.stop()
