"""Realistic exchanges for queue and worker tests, and a patient poll for eventual states."""

from __future__ import annotations

from collections import Counter

from shadowproxy.model import Exchange, Verdict
from tests.factories import make_comparison, make_request

VERDICTS = (Verdict.MISMATCH, Verdict.MATCH, Verdict.SHADOW_ERROR)


def exchanges(count: int, *, start: int = 0) -> list[Exchange]:
    """``count`` title look-ups in turn a mismatch (rating and genres), a match (gzip'd primary,
    plain shadow) and a shadow timeout."""
    return [
        make_comparison(
            verdict=VERDICTS[i % 3],
            request=make_request(query=f"id={9000 + start + i}&filter=names,genres"),
        ).exchange
        for i in range(start, start + count)
    ]


def expected_verdicts(count: int, *, start: int = 0) -> Counter[Verdict]:
    """How many of each verdict :func:`exchanges` yields."""
    return Counter(VERDICTS[i % 3] for i in range(start, start + count))
