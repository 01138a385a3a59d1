"""The readiness gate applies each criterion, with the documented defaults."""

from __future__ import annotations

import pytest

from shadowproxy.report.readiness import Criteria, assess
from shadowproxy.store.contract import EndpointSummary


def _summary(**overrides: object) -> EndpointSummary:
    values: dict[str, object] = {
        "endpoint": "GET /v3/title/{id}",
        "compared": 10_000,
        "matches": 10_000,
        "mismatches": 0,
        "shadow_errors": 0,
        "skipped": 0,
        "critical": 0,
        "primary_latency_ms": (40.0, 100.0),
        "shadow_latency_ms": (45.0, 110.0),
    }
    values.update(overrides)
    return EndpointSummary(**values)  # type: ignore[arg-type]


def _failed(summary: EndpointSummary, criteria: Criteria | None = None) -> list[str]:
    return [check.name for check in assess(summary, criteria or Criteria()).failures]


def test_a_clean_endpoint_passes() -> None:
    """Enough samples, no mismatches, similar latency: ready."""
    readiness = assess(_summary(), Criteria())
    assert (readiness.passed, [c.name for c in readiness.failures]) == (True, [])


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"compared": 99, "matches": 99}, ["samples"]),
        ({"mismatches": 10, "matches": 9_990}, ["mismatch_rate"]),  # exactly 0.1 %: not below
        ({"mismatches": 9, "matches": 9_991}, []),
        ({"critical": 1, "mismatches": 1, "matches": 9_999}, ["critical"]),
        ({"shadow_errors": 10, "matches": 9_990}, ["shadow_error_rate"]),
        ({"shadow_latency_ms": (45.0, 120.0)}, ["latency_ratio"]),  # 1.2x: not below
        (
            {"primary_latency_ms": (400.0, 480.0), "shadow_latency_ms": (400.0, 510.0)},
            ["shadow_p95"],
        ),
    ],
)
def test_each_criterion_fails_on_its_own(overrides: dict[str, object], expected: list[str]) -> None:
    """Each default threshold is a strict upper bound, and only the crossed check fails."""
    assert expected == _failed(_summary(**overrides))


def test_unknown_latency_is_not_held_against_an_endpoint() -> None:
    """A store without latency data reports (0, 0): the latency checks pass with a note."""
    readiness = assess(
        _summary(primary_latency_ms=(0.0, 0.0), shadow_latency_ms=(0.0, 0.0)), Criteria()
    )
    assert readiness.passed
    assert readiness.checks[-1].detail == "no shadow latency recorded"


def test_criteria_are_configurable() -> None:
    """Looser criteria let a 0.5 % mismatch rate through; fewer samples suffice."""
    summary = _summary(compared=50, matches=49, mismatches=1)
    assert _failed(summary) == ["samples", "mismatch_rate"]
    assert _failed(summary, Criteria(max_mismatch_rate=0.05, min_samples=50)) == []
