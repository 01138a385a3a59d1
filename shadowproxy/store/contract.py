"""The store contract: what the proxy, the API, the dashboard and the reports may ask of a store.

Two engines implement it (:mod:`shadowproxy.store.sqlite`, :mod:`shadowproxy.store.mongo`);
nothing outside ``shadowproxy/store/`` knows which one runs. Counters see every comparison; full
records are kept only for mismatches and shadow errors (Diffy's split). Writes are idempotent by
exchange id, so a replay after an outage never counts or stores twice.

Exceptions::

    StoreError              the store could not do what was asked (down, refused, corrupt)
    └── StoreURLError       the --store URL is malformed or names an unknown engine
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from shadowproxy.model import Comparison

T = TypeVar("T")


class StoreError(Exception):
    """The store could not do what was asked."""


class StoreURLError(StoreError, ValueError):
    """The store URL is malformed or names an engine we do not have."""


class TriageState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    EXPECTED = "expected"


@dataclass(frozen=True, slots=True)
class EndpointSummary:
    """Counts for one endpoint over a time window (from the per-minute counters)."""

    endpoint: str
    compared: int
    """Comparisons with a verdict of match, mismatch or shadow_error."""
    matches: int
    mismatches: int
    shadow_errors: int
    skipped: int
    critical: int = 0
    """Comparisons that had at least one critical difference."""
    primary_latency_ms: tuple[float, float] = (0.0, 0.0)
    """(p50, p95) of the primary's response time, milliseconds; (0, 0) when unknown."""
    shadow_latency_ms: tuple[float, float] = (0.0, 0.0)

    @property
    def mismatch_rate(self) -> float:
        return self.mismatches / self.compared if self.compared else 0.0

    @property
    def shadow_error_rate(self) -> float:
        return self.shadow_errors / self.compared if self.compared else 0.0


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One bucket of a per-endpoint time series."""

    minute: float
    """Start of the bucket, Unix seconds."""
    endpoint: str
    compared: int
    mismatches: int
    shadow_errors: int


@dataclass(frozen=True, slots=True)
class StoredDifference:
    pointer: str
    template: str
    kind: str
    primary: Any
    shadow: Any
    severity: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A backend outcome as stored: a response (status set) or an error (error set)."""

    status: int | None
    headers: tuple[tuple[str, str], ...]
    body: bytes
    """Body as received, capped; secrets redacted."""
    elapsed_ms: float
    truncated: bool = False
    error: str | None = None
    """Error kind (timeout, connect, reset, protocol) when the backend did not answer."""


@dataclass(frozen=True, slots=True)
class MismatchRecord:
    """One stored mismatch or shadow error, as the API returns it."""

    id: str
    """The exchange id."""
    at: float
    """When the request was received, Unix seconds."""
    endpoint: str
    method: str
    target: str
    """Path and query, secrets redacted."""
    request_headers: tuple[tuple[str, str], ...]
    request_body: bytes
    primary: StoredResponse
    shadow: StoredResponse
    verdict: str
    differences: tuple[StoredDifference, ...]
    fingerprint: str
    ruleset_version: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Group:
    """Identical mismatches (same fingerprint) gathered together."""

    fingerprint: str
    endpoint: str
    signature: tuple[tuple[str, str], ...]
    """The sorted (template, kind) pairs that define the group."""
    count: int
    first_seen: float
    last_seen: float
    example_ids: tuple[str, ...]
    state: TriageState = TriageState.OPEN
    note: str = ""


@dataclass(frozen=True, slots=True)
class FieldCount:
    """How often one path template differed on one endpoint."""

    endpoint: str
    template: str
    kind: str
    count: int


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a cursor-paginated listing."""

    items: tuple[T, ...]
    next_cursor: str | None = None
    """Pass back to get the next page; ``None`` on the last page."""


@dataclass(frozen=True, slots=True)
class StoreHealth:
    ok: bool
    engine: str
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Store(Protocol):
    """What every storage engine provides. All methods may raise :class:`StoreError`."""

    engine: str
    """``sqlite`` or ``mongodb``."""

    async def aopen(self) -> None:
        """Connect, create or migrate the schema and indexes (idempotent)."""

    async def aclose(self) -> None: ...

    async def write(self, batch: Sequence[Comparison]) -> None:
        """Count every comparison; keep records for mismatches and shadow errors; group them.

        Idempotent by ``comparison.exchange.id``: writing the same batch twice changes nothing.
        Comparisons arrive already redacted.
        """

    async def summary(
        self, *, since: float | None = None, until: float | None = None, endpoint: str | None = None
    ) -> list[EndpointSummary]: ...

    async def trend(
        self, *, since: float | None = None, until: float | None = None, endpoint: str | None = None
    ) -> list[TrendPoint]: ...

    async def fields(
        self, *, endpoint: str | None = None, since: float | None = None, until: float | None = None
    ) -> list[FieldCount]: ...

    async def mismatches(
        self,
        *,
        endpoint: str | None = None,
        verdict: str | None = None,
        fingerprint: str | None = None,
        since: float | None = None,
        until: float | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[MismatchRecord]:
        """Newest first."""
        ...

    async def mismatch(self, record_id: str) -> MismatchRecord | None: ...

    async def groups(
        self,
        *,
        endpoint: str | None = None,
        state: TriageState | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Group]:
        """Most frequent first."""
        ...

    async def set_triage(
        self, fingerprint: str, state: TriageState, note: str = ""
    ) -> Group | None: ...

    async def health(self) -> StoreHealth: ...
