"""The go/no-go gate: does one endpoint's shadow answer like its primary, often and fast enough?

An endpoint is ready when, over the window, every check passes:

- at least ``min_samples`` comparisons (too few proves nothing);
- mismatch rate below ``max_mismatch_rate`` (default 0.1 %);
- no comparison with a critical difference (more than ``max_critical``, default 0);
- shadow error rate below ``max_shadow_error_rate`` (default 0.1 %);
- shadow p95 below the primary's p95 x ``max_latency_ratio`` (default 1.2) and below
  ``max_shadow_p95_ms`` (default 500 ms). Latency checks are skipped (and pass) when the store has
  no latency for the endpoint, rather than failing on an unknown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shadowproxy.store.contract import EndpointSummary


@dataclass(frozen=True, slots=True)
class Criteria:
    """The thresholds of the gate; every one can be set from the API, the dashboard or the CLI."""

    max_mismatch_rate: float = 0.001
    """Fraction (0.001 is 0.1 %); the rate must be strictly below it."""
    max_shadow_error_rate: float = 0.001
    max_critical: int = 0
    """Comparisons with a critical difference tolerated (inclusive)."""
    max_latency_ratio: float = 1.2
    """Shadow p95 must be below primary p95 times this."""
    max_shadow_p95_ms: float = 500.0
    min_samples: int = 100
    """Comparisons needed before an endpoint can pass at all."""


@dataclass(frozen=True, slots=True)
class Check:
    """One criterion applied to one endpoint."""

    name: str
    """Stable identifier: ``samples``, ``mismatch_rate``, ``critical``, ``shadow_error_rate``,
    ``latency_ratio``, ``shadow_p95``."""
    passed: bool
    actual: float
    limit: float
    detail: str
    """One human sentence, e.g. ``mismatch rate 0.52 % ≥ 0.10 %``."""


@dataclass(frozen=True, slots=True)
class Readiness:
    """The gate's verdict on one endpoint."""

    endpoint: str
    passed: bool
    checks: tuple[Check, ...]

    @property
    def failures(self) -> tuple[Check, ...]:
        """The checks that failed, in check order."""
        return tuple(check for check in self.checks if not check.passed)


def percent(fraction: float) -> str:
    """``0.00123`` → ``0.12 %``: how rates are shown to people everywhere."""
    return f"{fraction * 100:.2f} %"


def assess(summary: EndpointSummary, criteria: Criteria) -> Readiness:
    """Apply every criterion to one endpoint's summary."""
    checks = [
        _samples(summary, criteria),
        _below("mismatch_rate", "mismatch rate", summary.mismatch_rate, criteria.max_mismatch_rate),
        Check(
            name="critical",
            passed=summary.critical <= criteria.max_critical,
            actual=float(summary.critical),
            limit=float(criteria.max_critical),
            detail=f"{summary.critical} comparison(s) with critical differences"
            + ("" if summary.critical <= criteria.max_critical else f" > {criteria.max_critical}"),
        ),
        _below(
            "shadow_error_rate",
            "shadow error rate",
            summary.shadow_error_rate,
            criteria.max_shadow_error_rate,
        ),
        *_latency(summary, criteria),
    ]
    return Readiness(
        endpoint=summary.endpoint,
        passed=all(check.passed for check in checks),
        checks=tuple(checks),
    )


def assess_all(summaries: Iterable[EndpointSummary], criteria: Criteria) -> list[Readiness]:
    """:func:`assess` for each summary, in the same order."""
    return [assess(summary, criteria) for summary in summaries]


def _samples(summary: EndpointSummary, criteria: Criteria) -> Check:
    passed = summary.compared >= criteria.min_samples
    return Check(
        name="samples",
        passed=passed,
        actual=float(summary.compared),
        limit=float(criteria.min_samples),
        detail=f"{summary.compared} of {criteria.min_samples} required comparisons"
        + ("" if passed else ": too few"),
    )


def _below(name: str, label: str, actual: float, limit: float) -> Check:
    passed = actual < limit
    relation = "<" if passed else "≥"
    return Check(
        name=name,
        passed=passed,
        actual=actual,
        limit=limit,
        detail=f"{label} {percent(actual)} {relation} {percent(limit)}",
    )


def _latency(summary: EndpointSummary, criteria: Criteria) -> list[Check]:
    primary_p95 = summary.primary_latency_ms[1]
    shadow_p95 = summary.shadow_latency_ms[1]
    if shadow_p95 <= 0.0:
        unknown = "no shadow latency recorded"
        return [
            Check("latency_ratio", True, 0.0, criteria.max_latency_ratio, unknown),
            Check("shadow_p95", True, 0.0, criteria.max_shadow_p95_ms, unknown),
        ]
    checks: list[Check] = []
    if primary_p95 > 0.0:
        ratio = shadow_p95 / primary_p95
        passed = ratio < criteria.max_latency_ratio
        checks.append(
            Check(
                name="latency_ratio",
                passed=passed,
                actual=ratio,
                limit=criteria.max_latency_ratio,
                detail=f"shadow p95 {_ms(shadow_p95)} is {ratio:.2f}x primary p95 "
                f"{_ms(primary_p95)} ({'<' if passed else '≥'} {criteria.max_latency_ratio:g}x)",
            )
        )
    else:
        checks.append(
            Check(
                "latency_ratio",
                True,
                0.0,
                criteria.max_latency_ratio,
                "no primary latency recorded",
            )
        )
    passed = shadow_p95 < criteria.max_shadow_p95_ms
    checks.append(
        Check(
            name="shadow_p95",
            passed=passed,
            actual=shadow_p95,
            limit=criteria.max_shadow_p95_ms,
            detail=f"shadow p95 {_ms(shadow_p95)} {'<' if passed else '≥'} "
            f"{criteria.max_shadow_p95_ms:g} ms",
        )
    )
    return checks


def _ms(value: float) -> str:
    """Milliseconds with a decimal below 10 ms, where rounding would hide the ratio."""
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"
