"""The pipeline's objects cross process boundaries (comparators, workers) by pickle."""

from __future__ import annotations

import pickle

import pytest

from shadowproxy.model import BackendError, Comparison, ErrorKind, Verdict
from tests.factories import make_comparison


def pickled(comparison: Comparison) -> Comparison:
    back: Comparison = pickle.loads(pickle.dumps(comparison, protocol=pickle.HIGHEST_PROTOCOL))  # noqa: S301 - our own bytes
    return back


@pytest.mark.parametrize("verdict", list(Verdict))
def test_a_comparison_survives_pickling_whole(verdict: Verdict) -> None:
    """Every field of every nested object comes back, in its place and of its type: the
    comparison, its differences, the exchange, the request and both outcomes."""
    comparison = make_comparison(verdict=verdict)
    back = pickled(comparison)
    assert comparison == back
    assert type(back.verdict) is Verdict
    assert [type(d.kind) for d in comparison.differences] == [
        type(d.kind) for d in back.differences
    ]


def test_a_backend_error_survives_pickling() -> None:
    comparison = make_comparison(
        primary=BackendError(ErrorKind.RESET, 0.25, "ServerDisconnectedError"),
        verdict=Verdict.SKIPPED,
    )
    back = pickled(comparison)
    assert back == comparison
    assert back.exchange.primary == BackendError(ErrorKind.RESET, 0.25, "ServerDisconnectedError")
