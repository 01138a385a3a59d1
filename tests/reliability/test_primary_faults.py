"""The primary misbehaves: the client gets what a plain reverse proxy would give, nothing else.

That is the primary's own bytes when it answered (a 500 page, a body with a lying
Content-Encoding, a 100 MB download, a drip), 502 when it could not be reached or spoke no HTTP,
504 when it did not answer in time, and an aborted connection when it died mid-body (a
truncated body must not look complete). The shadow is healthy throughout; the exchange is
skipped as ``primary_error: <kind>`` when the primary gave no response.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from shadowproxy.proxy.headers import HOP_BY_HOP
from tests.conftest import StartProxy
from tests.reliability import faults
from tests.reliability.conftest import RecordFigure, StartFault
from tests.reliability.faults import Seen, metrics_of, sample, timed_get

ENDPOINT = "GET /v3/title"
URL = "/v3/title?id=9174"
ROUNDS = 2
PRIMARY_TIMEOUT = 0.5


@dataclass(frozen=True)
class Expected:
    """What the client sees and what is recorded for one primary fault."""

    client: str
    """``primary``: the primary's own response, byte for byte; else ``502``, ``504`` or
    ``aborted`` (status 200 seen, then the connection cut)."""
    verdict: str
    reason: str = ""
    error_kind: str = ""


EXPECTED = {
    "refuses": Expected("502", "skipped", "primary_error: connect", "connect"),
    "hangs": Expected("504", "skipped", "primary_error: timeout", "timeout"),
    "resets": Expected("aborted", "skipped", "primary_error: reset", "reset"),
    "garbage": Expected("502", "skipped", "primary_error: protocol", "protocol"),
    "drips": Expected("primary", "mismatch"),
    "errors": Expected("primary", "mismatch"),
    "lying_gzip": Expected("primary", "mismatch"),
}


def comparable(seen: Seen) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = [(k.lower(), v) for k, v in seen.headers if k.lower() not in HOP_BY_HOP | {"date"}]
    return seen.status, seen.body, headers


@pytest.mark.parametrize("name", list(EXPECTED))
async def test_primary_fault_reaches_the_client_as_a_reverse_proxy_would(
    fault: StartFault,
    proxy: StartProxy,
    client: aiohttp.ClientSession,
    tmp_path: Path,
    name: str,
    record_figure: RecordFigure,
) -> None:
    """Status and bytes are the primary's or a 502/504/abort; latency is the fault's own (the
    primary's timeout for a hang), never more; the exchange is counted and not compared."""
    rounds = 1 if name == "drips" else ROUNDS  # a drip takes 4 s a request
    shadow = await fault("healthy")
    options: dict[str, object] = {"primary_timeout": PRIMARY_TIMEOUT, "shadow_timeout": 2.0}
    healthy = await proxy(await fault("healthy"), shadow, **options)
    primary = await fault(name)
    if name == "drips":
        options["primary_timeout"] = 5.0  # the drip is slow, not stuck: it must stream through
    # A store of its own, so the healthy proxy's counts do not mix in.
    faulty = await proxy(primary, shadow, store=f"sqlite:///{tmp_path / 'faulty.db'}", **options)

    baseline = [await timed_get(client, healthy.traffic_url + URL) for _ in range(rounds)]
    observed = [await timed_get(client, faulty.traffic_url + URL) for _ in range(rounds)]
    expected = EXPECTED[name]
    fastest = max(s.seconds for s in baseline) + 1.0  # generous: a loaded 2-core machine

    if expected.client == "primary":
        direct = [await timed_get(client, primary + URL) for _ in range(rounds)]
        assert [comparable(d) for d in direct] == [comparable(s) for s in observed]
        assert [""] * rounds == [s.error for s in observed]
    elif expected.client == "aborted":
        assert [(200, "ClientPayloadError")] * rounds == [(s.status, s.error) for s in observed]
        assert all(len(s.body) < 1000 for s in observed)  # never a body that looks whole
    else:
        status = int(expected.client)
        page = {502: b"502 Bad Gateway\n", 504: b"504 Gateway Timeout\n"}[status]
        assert [(status, page)] * rounds == [(s.status, s.body) for s in observed]

    if name == "hangs":
        assert all(PRIMARY_TIMEOUT * 0.9 <= s.seconds < PRIMARY_TIMEOUT + 1.0 for s in observed)
    elif name == "drips":
        # Streamed as it comes: the first byte long before the last.
        gap = faults.DRIP_INTERVAL * (len(faults.DRIP) - 1)
        assert all(s.first_byte < fastest and s.seconds >= gap * 0.9 for s in observed)
    else:
        assert max(s.seconds for s in observed) < fastest

    assert await faulty.drain(15)
    text = await metrics_of(client, faulty.admin_url)
    assert rounds == sample(
        text, "shadowproxy_comparisons_total", endpoint=ENDPOINT, verdict=expected.verdict
    )
    if expected.error_kind:
        assert rounds == sample(
            text,
            "shadowproxy_backend_errors_total",
            backend="primary",
            endpoint=ENDPOINT,
            kind=expected.error_kind,
        )
        [summary] = await faulty.store.summary(endpoint=ENDPOINT)
        assert (rounds, 0) == (summary.skipped, summary.compared)
    else:
        records = (await faulty.store.mismatches(endpoint=ENDPOINT)).items
        assert [expected.verdict] * rounds == [r.verdict for r in records]
        kinds = {d.kind for r in records for d in r.differences}
        assert {"errors": {"status"}, "drips": {"type"}}.get(name, {"unparseable"}) <= kinds

    record_figure(
        "client_ms_median", round(1000 * statistics.median(s.seconds for s in observed), 1)
    )
    record_figure(
        "baseline_ms_median", round(1000 * statistics.median(s.seconds for s in baseline), 1)
    )
    record_figure("first_byte_ms", round(1000 * max(s.first_byte for s in observed), 1))


async def test_huge_primary_streams_through_in_bounded_memory(
    fault: StartFault,
    proxy: StartProxy,
    client: aiohttp.ClientSession,
    record_figure: RecordFigure,
) -> None:
    """100 MB from the primary reaches the client whole, streamed; the proxy keeps only its
    capture cap (peak memory grows by megabytes, not by a hundred); the exchange is skipped as
    too large."""
    running = await proxy(await fault("huge"), await fault("healthy"), capture_max=1024 * 1024)
    before = faults.peak_rss_reset()
    seen = await timed_get(client, running.traffic_url + URL, keep_body=False, timeout=120)
    assert await running.drain(15)
    grown = faults.peak_rss() - before
    assert (200, "", faults.HUGE_BYTES) == (seen.status, seen.error, seen.size)
    assert grown < 40 * 1024 * 1024, f"peak RSS grew by {grown / 2**20:.1f} MiB"
    assert seen.first_byte < seen.seconds / 4  # streamed, not buffered then sent
    text = await metrics_of(client, running.admin_url)
    assert 1 == sample(text, "shadowproxy_comparisons_total", endpoint=ENDPOINT, verdict="skipped")
    [summary] = await running.store.summary(endpoint=ENDPOINT)
    assert 1 == summary.skipped
    record_figure("seconds", round(seen.seconds, 2))
    record_figure("first_byte_ms", round(1000 * seen.first_byte, 1))
    record_figure("peak_rss_growth_mib", round(grown / 2**20, 1))
