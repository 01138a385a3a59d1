"""Comparator processes: batches over a socket, rules sent once, failures and deaths reported."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import AsyncIterator

import pytest

from shadowproxy import comparators
from shadowproxy.comparators import ComparatorGoneError, ComparatorProcess, Failure, Job
from shadowproxy.model import CapturedResponse, Comparison, Exchange, Verdict
from shadowproxy.rules import Ruleset, parse_ruleset
from shadowproxy.store.redaction import RedactionPolicy
from tests.factories import make_request, make_response, title_document

RULES = """
version: 1
endpoints:
  - name: strict
    match: {path: /strict}
  - name: lenient
    match: {path: /lenient}
    ignore: [/rating]
  - name: other
    match: {path: /other}
"""


def exchange(n: int, *, rating: float = 8.7, shadow: CapturedResponse | None = None) -> Exchange:
    return Exchange(
        id=f"e{n}",
        endpoint="GET /api/v1/title",
        request=make_request(),
        primary=make_response({**title_document(), "rating": 8.7}),
        shadow=shadow or make_response({**title_document(), "rating": rating}),
    )


def job(ruleset: Ruleset, name: str, item: Exchange) -> Job:
    rules = ruleset.by_name(name)
    assert rules is not None
    return Job(item, rules, ruleset.version)


@pytest.fixture
async def process() -> AsyncIterator[ComparatorProcess]:
    started = await ComparatorProcess.spawn(
        multiprocessing.get_context("spawn"), RedactionPolicy.build()
    )
    yield started
    await started.aclose(5.0)


def verdicts(results: list[Comparison | Failure]) -> list[object]:
    return [r.verdict if isinstance(r, Comparison) else "failure" for r in results]


async def test_a_batch_is_compared_in_order_under_each_jobs_rules(
    process: ComparatorProcess,
) -> None:
    ruleset = parse_ruleset(RULES)
    batch = [
        job(ruleset, "strict", exchange(1, rating=9.1)),
        job(ruleset, "lenient", exchange(2, rating=9.1)),
        job(ruleset, "strict", exchange(3)),
    ]
    results = await process.compare(batch)
    assert [Verdict.MISMATCH, Verdict.MATCH, Verdict.MATCH] == verdicts(results)
    assert ["e1", "e2", "e3"] == [r.exchange.id for r in results if isinstance(r, Comparison)]


async def test_rules_travel_once_and_a_reload_sends_the_new_ones(
    process: ComparatorProcess,
) -> None:
    """The first batch carries the rules it needs; later batches name them by number. Rules
    from a reloaded file are new objects and travel again."""
    old = parse_ruleset(RULES)
    first, _ = process._batch([job(old, "strict", exchange(1)), job(old, "strict", exchange(2))])
    assert 1 == len(first.rules)
    await process.compare([job(old, "strict", exchange(1)), job(old, "strict", exchange(2))])
    again, _ = process._batch([job(old, "strict", exchange(3)), job(old, "lenient", exchange(4))])
    assert [1] == [number for number, _ in again.rules]  # strict is known as 0 already
    assert [0, 1] == [number for _, number, _ in again.jobs]

    new = parse_ruleset(RULES.replace("ignore: [/rating]", "ignore: []"))
    results = await process.compare(
        [job(old, "lenient", exchange(5, rating=9.1)), job(new, "lenient", exchange(6, rating=9.1))]
    )
    assert [Verdict.MATCH, Verdict.MISMATCH] == verdicts(results)


async def test_past_the_kept_rules_both_sides_start_over(
    process: ComparatorProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(comparators, "RULES_KEPT", 2)
    ruleset = parse_ruleset(RULES)
    names = ["strict", "lenient", "other", "lenient"]
    for n, name in enumerate(names):
        [result] = await process.compare([job(ruleset, name, exchange(n, rating=9.1))])
        expected = Verdict.MATCH if name == "lenient" else Verdict.MISMATCH
        assert isinstance(result, Comparison)
        assert expected == result.verdict


async def test_a_job_that_fails_is_reported_and_the_rest_are_compared(
    process: ComparatorProcess,
) -> None:
    ruleset = parse_ruleset(RULES)
    broken = CapturedResponse(status=200, headers=(), body=None, elapsed=0.0)  # type: ignore[arg-type]
    results = await process.compare(
        [
            job(ruleset, "strict", exchange(1, shadow=broken)),
            job(ruleset, "strict", exchange(2)),
        ]
    )
    assert ["failure", Verdict.MATCH] == verdicts(results)
    failure = results[0]
    assert isinstance(failure, Failure)
    assert "Traceback" in failure.detail


async def test_a_killed_process_fails_what_it_held_and_what_comes_after(
    process: ComparatorProcess,
) -> None:
    ruleset = parse_ruleset(RULES)
    assert process.process.pid is not None
    os.kill(process.process.pid, signal.SIGKILL)
    with pytest.raises(ComparatorGoneError):
        await process.compare([job(ruleset, "strict", exchange(1))])
    assert process.gone
    with pytest.raises(ComparatorGoneError):
        await process.compare([job(ruleset, "strict", exchange(2))])


async def test_only_comparisons_that_are_stored_carry_their_bodies_back(
    process: ComparatorProcess,
) -> None:
    """A match is only counted: it comes back without bodies (nothing to pickle, nothing
    unredacted in the serving process). A mismatch keeps them for the store."""
    ruleset = parse_ruleset(RULES)
    match, mismatch = await process.compare(
        [job(ruleset, "strict", exchange(1)), job(ruleset, "strict", exchange(2, rating=9.1))]
    )
    assert isinstance(match, Comparison)
    assert isinstance(mismatch, Comparison)
    bodies = [
        [o.body for o in (c.exchange.primary, c.exchange.shadow) if isinstance(o, CapturedResponse)]
        for c in (match, mismatch)
    ]
    assert [b"", b""] == bodies[0]
    assert all(len(body) > 100 for body in bodies[1])


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling classes")
async def test_a_comparator_only_takes_cpu_time_nothing_else_wants(
    process: ComparatorProcess,
) -> None:
    """The process runs in the idle scheduling class, niced, so a serving process is never made
    to wait for it."""
    await process.compare([job(parse_ruleset(RULES), "strict", exchange(1))])  # it has started
    pid = process.process.pid
    assert pid is not None
    assert os.SCHED_IDLE == os.sched_getscheduler(pid)
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    assert min(19, ours + comparators.NICENESS) == os.getpriority(os.PRIO_PROCESS, pid)
