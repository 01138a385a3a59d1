"""Fixed latency buckets, so percentiles can be summed across minutes, processes and engines.

Each comparison adds one to a bucket per backend; p50 and p95 are read back from the summed bucket
counts by linear interpolation inside the bucket. Bucket bounds grow by 25 %, from 0.5 ms to about
two minutes, so an estimate is within about 12 % of the true value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

_FIRST_MS = 0.5
_GROWTH = 1.25
BUCKETS = 57
"""Bucket ``i`` holds latencies in ``(bound(i - 1), bound(i)]``; the last one is open-ended."""


def bound(index: int) -> float:
    """Upper bound of bucket ``index`` in milliseconds (``0`` for index -1)."""
    if index < 0:
        return 0.0
    return _FIRST_MS * _GROWTH**index


def bucket_of(ms: float) -> int:
    """The bucket a latency of ``ms`` milliseconds falls into."""
    if ms <= _FIRST_MS:
        return 0
    index = math.ceil(math.log(ms / _FIRST_MS) / math.log(_GROWTH) - 1e-9)
    return min(max(index, 0), BUCKETS - 1)


def percentile(counts: Mapping[int, int], q: float) -> float:
    """The ``q`` quantile (0..1) in milliseconds from bucket counts; ``0.0`` when empty."""
    total = sum(counts.values())
    if total <= 0:
        return 0.0
    rank = q * total
    seen = 0
    for index in sorted(counts):
        n = counts[index]
        if n <= 0:
            continue
        if seen + n >= rank:
            low, high = bound(index - 1), bound(index)
            share = (rank - seen) / n
            return round(low + (high - low) * share, 3)
        seen += n
    return round(bound(max(counts)), 3)
