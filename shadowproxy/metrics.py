"""Prometheus metrics: the only module that knows prometheus-client.

Labels are bounded by construction: ``endpoint`` is a rule name or a capped template (see
:mod:`shadowproxy.proxy.endpoint`), ``backend`` is primary or shadow, and ``verdict``, ``kind`` and
``reason`` come from enums. Never a raw path, an id or a field path.

Components do not hold metric objects. Events are reported through the methods here; levels
(queue depth, in-flight calls, store state) are read at scrape time from the callables registered
with :meth:`Metrics.gauge`, so nothing has to remember to update a gauge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from shadowproxy.model import BackendError, Comparison, Outcome, SkipReason, Verdict

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_COMPARE_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


_M = TypeVar("_M", Counter, Histogram)


class _Labelled(Generic[_M]):
    """A metric's children by label values, each looked up once: ``labels()`` checks its
    arguments and takes a lock on every call, and the serving loop counts several times per
    request. The label sets are bounded (see above), so is this cache."""

    def __init__(self, metric: _M) -> None:
        self._metric: _M = metric
        self._children: dict[tuple[str, ...], _M] = {}

    def __call__(self, *values: str) -> _M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


@dataclass(frozen=True, slots=True)
class _Probe:
    name: str
    documentation: str
    read: Callable[[], float]
    counter: bool = False
    labels: tuple[tuple[str, str], ...] = ()


class _Probes(Collector):
    """Reads registered levels at scrape time."""

    def __init__(self) -> None:
        self.probes: list[_Probe] = []

    def collect(self) -> Iterator[Metric]:
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        for probe in self.probes:
            family = families.get(probe.name)
            if family is None:
                names = [k for k, _ in probe.labels]
                family = (
                    CounterMetricFamily(probe.name, probe.documentation, labels=names)
                    if probe.counter
                    else GaugeMetricFamily(probe.name, probe.documentation, labels=names)
                )
                families[probe.name] = family
            family.add_metric([v for _, v in probe.labels], float(probe.read()))
        yield from families.values()


class Metrics:
    """The process's metrics, in a registry of its own (tests can run many proxies at once)."""

    def __init__(self) -> None:
        # `_created` series double every counter's line count and no dashboard here reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.comparisons = Counter(
            "shadowproxy_comparisons_total",
            "Comparisons by endpoint and verdict.",
            ["endpoint", "verdict"],
            registry=r,
        )
        self.differences = Counter(
            "shadowproxy_differences_total",
            "Differences found, by endpoint and kind.",
            ["endpoint", "kind"],
            registry=r,
        )
        self.critical = Counter(
            "shadowproxy_critical_comparisons_total",
            "Comparisons with at least one difference on a critical path.",
            ["endpoint"],
            registry=r,
        )
        self.backend_duration = Histogram(
            "shadowproxy_backend_request_duration_seconds",
            "Time from sending a request to a backend to its last body byte.",
            ["backend", "endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.backend_errors = Counter(
            "shadowproxy_backend_errors_total",
            "Backend requests that got no complete response, by kind.",
            ["backend", "endpoint", "kind"],
            registry=r,
        )
        self.skips = Counter(
            "shadowproxy_mirror_skips_total",
            "Requests forwarded but not mirrored or not compared, by reason.",
            ["endpoint", "reason"],
            registry=r,
        )
        self.client_body_failures = Counter(
            "shadowproxy_client_body_failures_total",
            "Request bodies the client did not send whole: too_large, timeout (stalled),"
            " incomplete (left, or broke the framing). Never counted as a backend error.",
            ["endpoint", "reason"],
            registry=r,
        )
        self.compare_duration = Histogram(
            "shadowproxy_comparison_duration_seconds",
            "Comparator time per exchange (decode, parse, diff).",
            buckets=_COMPARE_BUCKETS,
            registry=r,
        )
        self.sink_errors = Counter(
            "shadowproxy_sink_errors_total",
            "Exceptions raised by a comparison sink.",
            ["sink"],
            registry=r,
        )
        self._comparisons = _Labelled(self.comparisons)
        self._differences = _Labelled(self.differences)
        self._critical = _Labelled(self.critical)
        self._backend_duration = _Labelled(self.backend_duration)
        self._backend_errors = _Labelled(self.backend_errors)
        self._skips = _Labelled(self.skips)
        self._client_body_failures = _Labelled(self.client_body_failures)
        self._probes = _Probes()
        r.register(self._probes)
        ProcessCollector(registry=r)  # RSS, open fds, CPU: what a soak test watches

    # --- events ---------------------------------------------------------------------------------

    def backend_outcome(self, backend: str, endpoint: str, outcome: Outcome) -> None:
        if isinstance(outcome, BackendError):
            self._backend_errors(backend, endpoint, outcome.kind.value).inc()
        else:
            self._backend_duration(backend, endpoint).observe(outcome.elapsed)

    def client_body_failed(self, endpoint: str, reason: str) -> None:
        self._client_body_failures(endpoint, reason).inc()

    def skip(self, endpoint: str, reason: SkipReason) -> None:
        self._skips(endpoint, reason.value).inc()

    def consume(self, comparison: Comparison) -> None:
        """Sink interface: count one comparison."""
        endpoint = comparison.exchange.endpoint
        self._comparisons(endpoint, comparison.verdict.value).inc()
        for difference in comparison.differences:
            self._differences(endpoint, difference.kind.value).inc()
        if comparison.critical:
            self._critical(endpoint).inc()
        if comparison.verdict is Verdict.SKIPPED:
            self._skips(endpoint, _reason_label(comparison.reason)).inc()
        self.compare_duration.observe(comparison.duration)

    def sink_failed(self, sink: str) -> None:
        self.sink_errors.labels(sink).inc()

    # --- levels ---------------------------------------------------------------------------------

    def gauge(
        self, name: str, documentation: str, read: Callable[[], float], **labels: str
    ) -> None:
        """Register a level read at scrape time (``name`` gets the ``shadowproxy_`` prefix)."""
        self._probes.probes.append(
            _Probe(f"shadowproxy_{name}", documentation, read, labels=tuple(labels.items()))
        )

    def counter(
        self, name: str, documentation: str, read: Callable[[], float], **labels: str
    ) -> None:
        """Register a count kept by a component, read at scrape time (``name`` without _total)."""
        self._probes.probes.append(
            _Probe(
                f"shadowproxy_{name}",
                documentation,
                read,
                counter=True,
                labels=tuple(labels.items()),
            )
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _reason_label(reason: str) -> str:
    """A bounded label from a skip reason: ``primary_error: timeout`` → ``primary_error``."""
    token = reason.split(":", 1)[0].strip().lower()
    return token if token.replace("_", "").isalpha() and len(token) <= 32 else "other"


AVERAGED = frozenset(
    {
        "shadowproxy_mirror_share",
        "shadowproxy_loop_lag_seconds",
        "shadowproxy_loop_busy_ratio",
        "shadowproxy_cpu_pressure_ratio",
    }
)
"""The governor's gauges: each describes its own process (a share, a ratio, a backlog), so the
fleet's value is their mean, not their sum."""
LEAST = frozenset({"process_start_time_seconds", "process_max_fds"})
"""Per-process values whose fleet value is the smallest: the earliest start, the tightest limit."""


def merge_expositions(texts: Iterable[str]) -> bytes:
    """Sum several processes' expositions into one (``--workers N``: one /metrics for all).

    Counters, histogram buckets and sums add up across processes; so do the levels (queue depth,
    in-flight calls are per process, the fleet's is their sum), except the :data:`AVERAGED` and
    :data:`LEAST` ones. ``_created`` timestamps cannot be summed and are left out.
    """
    families: dict[str, tuple[str, str]] = {}
    samples: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = {}
    seen: dict[tuple[str, str, tuple[tuple[str, str], ...]], int] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if family.name.endswith("_created"):
                continue
            families.setdefault(family.name, (family.type, family.documentation))
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                key = (family.name, sample.name, tuple(sorted(sample.labels.items())))
                if family.name in LEAST and key in samples:
                    samples[key] = min(samples[key], sample.value)
                else:
                    samples[key] = samples.get(key, 0.0) + sample.value
                seen[key] = seen.get(key, 0) + 1
    for key in samples:
        if key[0] in AVERAGED:
            samples[key] /= seen[key]
    lines: list[str] = []
    for name, (kind, documentation) in families.items():
        exposed = f"{name}_total" if kind == "counter" else name
        lines.append(f"# HELP {exposed} {_escape_help(documentation)}")
        lines.append(f"# TYPE {exposed} {kind}")
        for (owner, sample_name, labels), value in samples.items():
            if owner != name:
                continue
            rendered = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
            lines.append(
                f"{sample_name}{{{rendered}}} {value!r}" if labels else f"{sample_name} {value!r}"
            )
    return ("\n".join(lines) + "\n").encode()


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
