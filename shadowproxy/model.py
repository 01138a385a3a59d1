"""The objects that flow through the pipeline.

ingress → primary forward → mirror → comparator → sinks. One :class:`Exchange` carries a request
through the system (like mitmproxy's flow); the comparator turns it into one :class:`Comparison`,
which every sink (metrics, store) receives. All of them are frozen and slotted, and made of plain
values only, so they pickle cheaply into comparator worker processes.

A backend either answered (:class:`CapturedResponse`, whatever its status) or did not
(:class:`BackendError`); never both. A shadow 500 is a response; a shadow timeout is an error.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, TypeVar

_T = TypeVar("_T")

Headers = tuple[tuple[str, str], ...]
"""Header fields in wire order, repeated names kept (``Set-Cookie`` twice is two entries)."""


def _pickled_by_fields(cls: type[_T]) -> type[_T]:
    """Pickle as ``cls(*fields)``. A frozen, slotted dataclass otherwise unpickles through
    dataclasses' generic ``__setstate__`` (a Python loop over its fields): with this, an exchange
    pickles and unpickles in two thirds of the time, on every hand-off to a comparator and back."""
    values = operator.attrgetter(*(f.name for f in fields(cls)))  # type: ignore[arg-type]

    def reduce(self: _T) -> tuple[type[_T], tuple[Any, ...]]:
        return cls, values(self)

    setattr(cls, "__reduce__", reduce)  # noqa: B010 - a method assigned after @dataclass
    return cls


def header_value(headers: Headers, name: str) -> str | None:
    """The first value of header ``name`` (case-insensitive), or ``None`` when absent."""
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class CapturedRequest:
    """The client's request as the proxy received it (the mirror replays exactly this)."""

    method: str
    """Upper-case HTTP method."""
    path: str
    """The path as sent by the client, percent-encoding kept."""
    query: str
    """The raw query string without the leading ``?``; empty when there is none."""
    headers: Headers
    """Request headers as received, before hop-by-hop stripping."""
    body: bytes
    """The request body (buffered only up to the mirror cap; larger bodies are not mirrored)."""
    received_at: float
    """Wall-clock time (Unix seconds) at which the request reached the proxy."""

    @property
    def target(self) -> str:
        """Path plus query, as it appears on the request line."""
        return f"{self.path}?{self.query}" if self.query else self.path


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class CapturedResponse:
    """A backend's answer: whatever status it had, this is a response, not an error."""

    status: int
    headers: Headers
    """Response headers as the backend sent them (Content-Encoding untouched)."""
    body: bytes
    """The body as received on the wire (still encoded), up to the capture cap."""
    elapsed: float
    """Seconds from sending the request to the last body byte read."""
    truncated: bool = False
    """True when the body exceeded the capture cap and ``body`` holds only its start."""


class ErrorKind(StrEnum):
    """Why a backend gave no complete response."""

    TIMEOUT = "timeout"
    CONNECT = "connect"
    RESET = "reset"
    PROTOCOL = "protocol"


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class BackendError:
    """A backend that did not answer: refused, timed out, reset or spoke broken HTTP."""

    kind: ErrorKind
    elapsed: float
    """Seconds from sending the request until the failure was seen."""
    detail: str = ""
    """A short human-readable cause (exception class and message), never a traceback."""


Outcome = CapturedResponse | BackendError
"""What came back from one backend."""


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class Exchange:
    """One mirrored request with both backends' outcomes: the unit the comparator works on."""

    id: str
    """Unique id (hex); store writes are idempotent by it."""
    endpoint: str
    """Endpoint name: a rule's ``name``, or a template such as ``GET /v3/title/{id}``."""
    request: CapturedRequest
    primary: Outcome
    shadow: Outcome

    @property
    def body_bytes(self) -> int:
        """The bytes its bodies hold: what holding it costs, near enough (the byte budgets)."""
        size = len(self.request.body)
        for outcome in (self.primary, self.shadow):
            if isinstance(outcome, CapturedResponse):
                size += len(outcome.body)
        return size


class DiffKind(StrEnum):
    """What sort of difference was found."""

    VALUE = "value"
    """Same type, different value."""
    TYPE = "type"
    """Different JSON types (``"9174"`` against ``9174``)."""
    MISSING = "missing"
    """Present in the primary, absent in the shadow."""
    EXTRA = "extra"
    """Present only in the shadow."""
    STATUS = "status"
    """HTTP status codes differ."""
    HEADER = "header"
    """A compared response header differs."""
    UNPARSEABLE = "unparseable"
    """A body that claims to be JSON (or is expected to be) does not parse."""
    TEXT = "text"
    """Non-JSON bodies differ (compared as text or bytes)."""


class Severity(StrEnum):
    NORMAL = "normal"
    CRITICAL = "critical"
    """The path is listed under ``critical`` in the rules: the report gate fails on it."""


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class Difference:
    """One place where the shadow's response differs from the primary's."""

    pointer: str
    """RFC 6901 pointer (``/list/3/names/ru``); into the primary document, or into the shadow's
    for ``extra``. ``""`` is the whole body; status and header differences use ``/status`` and
    ``/headers/<lower-case name>``."""
    template: str
    """The pointer with array indices replaced by ``*`` (``/list/*/names/ru``), for grouping."""
    kind: DiffKind
    primary: Any = None
    """The primary's value (JSON-compatible); ``None`` for ``extra``."""
    shadow: Any = None
    """The shadow's value (JSON-compatible); ``None`` for ``missing``."""
    severity: Severity = Severity.NORMAL
    label: str = ""
    """Human form of the location when it differs from ``pointer``: elements of arrays matched by
    key read ``/list/[id=9174]/names/ru``. Empty means "same as pointer"."""

    @property
    def where(self) -> str:
        """The location to show people."""
        return self.label or self.pointer


class Verdict(StrEnum):
    MATCH = "match"
    MISMATCH = "mismatch"
    SHADOW_ERROR = "shadow_error"
    """The shadow failed (timeout, connection error, 5xx against a non-5xx primary)."""
    SKIPPED = "skipped"
    """Not compared; ``Comparison.reason`` says why (body too large, primary failed, ...)."""


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class Comparison:
    """The comparator's verdict on one exchange; every sink receives it."""

    exchange: Exchange
    verdict: Verdict
    differences: tuple[Difference, ...] = ()
    ruleset_version: str = ""
    """Hash of the rule file content the comparison ran under."""
    fingerprint: str = ""
    """Hash of endpoint + sorted (template, kind) pairs: identical mismatches share it."""
    reason: str = ""
    """Why a comparison was skipped or why the shadow erred (``timeout``, ``status 502``...)."""
    duration: float = 0.0
    """Seconds the comparator spent on this exchange (decode, parse, diff)."""
    critical: bool = field(default=False)
    """True when any difference is critical."""


class SkipReason(StrEnum):
    """Why a request was forwarded but not mirrored, or an exchange not compared.

    Every skip is counted under one of these (the ``reason`` metric label), never silent.
    """

    UNSAFE_METHOD = "unsafe_method"
    """Not GET, HEAD or OPTIONS, and no rule opts in."""
    RULE_OFF = "rule_off"
    """The endpoint's rule says ``mirror: false``."""
    SAMPLED_OUT = "sampled_out"
    RATE_LIMITED = "rate_limited"
    DISABLED = "disabled"
    """The kill switch is on."""
    TOO_LARGE = "too_large"
    """The request body exceeds the mirror buffer cap."""
    SHADOW_BUSY = "shadow_busy"
    """The shadow's in-flight cap is reached."""
    SERVING_BUSY = "serving_busy"
    """The serving loop is saturated: mirroring is sampled down so clients keep its time."""
    CIRCUIT_OPEN = "circuit_open"
    QUEUE_FULL = "queue_full"
    """The comparator's queue is full; the exchange was dropped."""
    UPGRADE = "upgrade"
    """WebSocket and other upgrades go to the primary only."""
    CLIENT_GONE = "client_gone"
    """The client went away before the primary's response was complete."""
