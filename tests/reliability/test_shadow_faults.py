"""The shadow misbehaves in every way we know; the client never notices, the comparison says it.

Each case runs two proxies on the same healthy primary, one with a healthy shadow (the baseline)
and one with the faulty shadow, and compares what their clients got: status, bytes, latency. Then
it checks what the faulty proxy recorded (store) and counted (/metrics). tests/proxy/test_mirror.py
covers a slow shadow and a non-JSON body; this extends the list.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import aiohttp
import pytest

from tests.conftest import StartProxy
from tests.reliability import faults
from tests.reliability.conftest import RecordFigure, StartFault
from tests.reliability.faults import metrics_of, sample, timed_get

ENDPOINT = "GET /v3/title"
URL = "/v3/title?id=9174"
ROUNDS = 4


@dataclass(frozen=True)
class Expected:
    """What the faulty proxy should record and count for one shadow fault."""

    verdict: str
    reason: str
    stored: bool
    error_kind: str = ""
    """The shadow's BackendError kind in /metrics, when it gave no response."""


EXPECTED = {
    "refuses": Expected("shadow_error", "connect", stored=True, error_kind="connect"),
    "hangs": Expected("shadow_error", "timeout", stored=True, error_kind="timeout"),
    "resets": Expected("shadow_error", "reset", stored=True, error_kind="reset"),
    "garbage": Expected("shadow_error", "protocol", stored=True, error_kind="protocol"),
    "huge": Expected("skipped", "too_large", stored=False),
    "drips": Expected("shadow_error", "timeout", stored=True, error_kind="timeout"),
    "errors": Expected("shadow_error", "status 500", stored=True),
    "lying_gzip": Expected("mismatch", "", stored=True),
}


@pytest.mark.parametrize("name", list(EXPECTED))
async def test_shadow_fault_leaves_the_client_alone(
    fault: StartFault,
    proxy: StartProxy,
    client: aiohttp.ClientSession,
    name: str,
    record_figure: RecordFigure,
) -> None:
    """The client gets the primary's exact bytes, about as fast as with a healthy shadow; the
    fault is recorded with its verdict and reason and counted in /metrics."""
    primary = await fault("healthy")
    options = {"shadow_timeout": 2.0, "capture_max": 1024 * 1024, "breaker_failures": 100}
    healthy = await proxy(primary, await fault("healthy"), **options)
    faulty = await proxy(primary, await fault(name), **options)

    baseline = [await timed_get(client, healthy.traffic_url + URL) for _ in range(ROUNDS)]
    observed = [await timed_get(client, faulty.traffic_url + URL) for _ in range(ROUNDS)]

    assert [(200, faults.TITLE_BYTES, "")] * ROUNDS == [
        (s.status, s.body, s.error) for s in observed
    ]
    # Generous: the hanging and dripping shadows hold their calls for the 2 s shadow timeout; a
    # client that waited on them would show it. Against the baseline, machine noise stays out.
    assert max(s.seconds for s in observed) < max(s.seconds for s in baseline) + 1.0

    assert await faulty.drain(15)
    expected = EXPECTED[name]
    text = await metrics_of(client, faulty.admin_url)
    assert ROUNDS == sample(
        text, "shadowproxy_comparisons_total", endpoint=ENDPOINT, verdict=expected.verdict
    )
    if expected.error_kind:
        assert ROUNDS == sample(
            text,
            "shadowproxy_backend_errors_total",
            backend="shadow",
            endpoint=ENDPOINT,
            kind=expected.error_kind,
        )
    page = await faulty.store.mismatches(endpoint=ENDPOINT)
    if expected.stored:
        assert [(expected.verdict, expected.reason)] * ROUNDS == [
            (r.verdict, r.reason) for r in page.items
        ]
    else:
        assert [] == list(page.items)
        [summary] = await faulty.store.summary(endpoint=ENDPOINT)
        assert ROUNDS == summary.skipped
    if name == "lying_gzip":
        kinds = {d.kind for r in page.items for d in r.differences}
        assert {"unparseable"} == kinds

    record_figure(
        "client_ms_median", round(1000 * statistics.median(s.seconds for s in observed), 1)
    )
    record_figure(
        "baseline_ms_median", round(1000 * statistics.median(s.seconds for s in baseline), 1)
    )
    record_figure("client_ms_max", round(1000 * max(s.seconds for s in observed), 1))
    record_figure("baseline_ms_max", round(1000 * max(s.seconds for s in baseline), 1))


async def test_huge_shadow_does_not_grow_memory(
    fault: StartFault,
    proxy: StartProxy,
    client: aiohttp.ClientSession,
    record_figure: RecordFigure,
) -> None:
    """A shadow sending 100 MB is read only up to the capture cap: peak memory grows by a few
    megabytes, not by a hundred, and the exchange is skipped as too large."""
    running = await proxy(
        await fault("healthy"), await fault("huge"), capture_max=1024 * 1024, shadow_timeout=10.0
    )
    before = faults.peak_rss_reset()
    seen = [await timed_get(client, running.traffic_url + URL) for _ in range(3)]
    assert await running.drain(30)
    grown = faults.peak_rss() - before
    assert [200, 200, 200] == [s.status for s in seen]
    assert grown < 40 * 1024 * 1024, f"peak RSS grew by {grown / 2**20:.1f} MiB"
    text = await metrics_of(client, running.admin_url)
    assert 3 == sample(text, "shadowproxy_comparisons_total", endpoint=ENDPOINT, verdict="skipped")
    record_figure("peak_rss_growth_mib", round(grown / 2**20, 1))
