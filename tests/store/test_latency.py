"""Latency buckets: every value lands in the bucket whose bounds hold it; percentiles are close."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shadowproxy.store import latency


@given(st.floats(min_value=0.0, max_value=60_000.0))
def test_a_latency_falls_inside_its_bucket(ms: float) -> None:
    """bound(i - 1) < ms <= bound(i), except the first and the open-ended last bucket."""
    index = latency.bucket_of(ms)

    assert ms <= latency.bound(index) * (1 + 1e-9)
    assert index == 0 or latency.bound(index - 1) < ms * (1 + 1e-9)


def test_percentiles_are_within_the_bucket_resolution() -> None:
    """p50 and p95 of 1..1000 ms read back within 25 %."""
    counts: dict[int, int] = {}
    for ms in range(1, 1001):
        counts[latency.bucket_of(ms)] = counts.get(latency.bucket_of(ms), 0) + 1

    p50, p95 = latency.percentile(counts, 0.5), latency.percentile(counts, 0.95)

    assert 500 / 1.25 <= p50 <= 500 * 1.25
    assert 950 / 1.25 <= p95 <= 950 * 1.25
    assert 0.0 == latency.percentile({}, 0.5)
