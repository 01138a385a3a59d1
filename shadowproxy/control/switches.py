"""The runtime switches: what they are, how a change is validated and applied, how they are stored.

:class:`Switches` is the whole state, immutable; the serving loop reads it as one attribute.
:class:`Change` is a partial update (an API body, a CLI command) validated once, then applied by
:meth:`Change.apply` — the single merge used in local mode and in Redis mode alike, so the two
cannot disagree. The stored and published form is the JSON of :meth:`Switches.to_json`.

Semantics, decided here so that every caller agrees:

- ``killed``: nothing is mirrored, anywhere (skip reason ``disabled``).
- ``endpoints[name] = False``: that endpoint is not mirrored (skip reason ``rule_off``);
  ``True``: mirrored even if its rule says ``mirror: false`` — but only safe methods: an override
  never unlocks POST/PUT/PATCH/DELETE, which only a rule's ``mirror: true`` in the file can do.
- ``sample``: replaces ``--sample``; an endpoint rule's own ``sample:`` still wins for its endpoint.
- ``shadow_rps``: replaces ``--shadow-rps`` (``0`` = no cap); ``None`` = use the setting.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, TypeGuard

import orjson

from shadowproxy.model import SkipReason

ENDPOINT_NAME_MAX = 200
"""Longest endpoint name accepted in an override (names are rule names or path templates)."""
ENDPOINT_OVERRIDES_MAX = 1000
"""Most per-endpoint overrides kept; the state is pushed whole to every proxy on each change."""


class SwitchesError(ValueError):
    """A bad switch value or stored state; the message names the field and says why."""


def _frozen(mapping: Mapping[str, bool]) -> Mapping[str, bool]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class Switches:
    """Fleet-wide runtime switches, as last known by this process."""

    sample: float | None = None
    """Percentage of eligible requests mirrored; ``None`` = the ``--sample`` setting."""
    killed: bool = False
    """The kill switch: when on, no request is mirrored."""
    endpoints: Mapping[str, bool] = field(default_factory=lambda: _frozen({}))
    """Per-endpoint overrides: endpoint name to mirroring on (``True``) or off (``False``)."""
    shadow_rps: float | None = None
    """Requests per second sent to the shadow, fleet-wide; ``None`` = ``--shadow-rps``; 0 = none."""
    version: int = 0
    """Bumped by one on every change; 0 means never changed."""
    updated_at: float = 0.0
    """Unix time of the last change (0 when never changed)."""

    # --- the decisions the mirroring policy asks for (no I/O, no allocation) ---------------------

    def skip_reason(self, endpoint: str) -> SkipReason | None:
        """Why the switches forbid mirroring ``endpoint`` (kill switch, override off), else None."""
        if self.killed:
            return SkipReason.DISABLED
        if self.endpoints.get(endpoint) is False:
            return SkipReason.RULE_OFF
        return None

    def rule_mirror(self, endpoint: str, rule_mirror: bool | None) -> bool | None:
        """The endpoint rule's ``mirror`` value after this endpoint's override.

        Off gives ``False``; on turns a rule's ``False`` into ``None`` (mirror safe methods), and
        keeps ``True`` (the rule file alone opts unsafe methods in).
        """
        override = self.endpoints.get(endpoint)
        if override is None:
            return rule_mirror
        if override is False:
            return False
        return True if rule_mirror is True else None

    def sample_percent(self, configured: float, rule_sample: float | None) -> float:
        """Sampling percentage for one request: the rule's, else this override, else the setting."""
        if rule_sample is not None:
            return rule_sample
        return configured if self.sample is None else self.sample

    def rate(self, configured: float) -> float:
        """Shadow requests per second allowed fleet-wide (0 = no cap)."""
        return configured if self.shadow_rps is None else self.shadow_rps

    # --- stored form ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form stored in Redis, published, and returned by the API."""
        return {
            "version": self.version,
            "updated_at": self.updated_at,
            "killed": self.killed,
            "sample": self.sample,
            "shadow_rps": self.shadow_rps,
            "endpoints": dict(sorted(self.endpoints.items())),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_json(cls, raw: bytes | str) -> Switches:
        """Decode a stored or published state; raise :class:`SwitchesError` when it is not one."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise SwitchesError(f"stored switches are not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise SwitchesError("stored switches must be a JSON object")
        version = data.get("version", 0)
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise SwitchesError(f"version must be a whole number >= 0, got {version!r}")
        updated_at = data.get("updated_at", 0.0)
        if not _is_number(updated_at):
            raise SwitchesError(f"updated_at must be a number, got {updated_at!r}")
        change = Change.parse(
            {k: data[k] for k in ("killed", "sample", "shadow_rps", "endpoints") if k in data},
            endpoints_null_allowed=False,
        )
        state = change.apply(cls(), now=float(updated_at))
        return replace(state, version=version)


def _in_range(value: object, low: float, high: float) -> bool:
    return _is_number(value) and low <= float(value) <= high


def _is_number(value: object) -> TypeGuard[float]:
    """A finite JSON number (``true`` and ``false`` are not numbers here)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


class _Keep(enum.Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP
"""A :class:`Change` field left at ``KEEP`` leaves that switch as it is."""


@dataclass(frozen=True, slots=True)
class Change:
    """A partial update of the switches; fields at :data:`KEEP` are left unchanged."""

    killed: bool | _Keep = KEEP
    sample: float | _Keep | None = KEEP
    """A percentage 0-100, or ``None`` to go back to the ``--sample`` setting."""
    shadow_rps: float | _Keep | None = KEEP
    """Requests per second (0 = no cap), or ``None`` to go back to ``--shadow-rps``."""
    endpoints: Mapping[str, bool | None] = field(default_factory=lambda: MappingProxyType({}))
    """Endpoint name to on (``True``), off (``False``) or clear the override (``None``)."""

    def __post_init__(self) -> None:
        if self.killed is not KEEP and not isinstance(self.killed, bool):
            raise SwitchesError(f"killed must be true or false, got {self.killed!r}")
        sample = self.sample
        if sample is not KEEP and sample is not None and not _in_range(sample, 0.0, 100.0):
            raise SwitchesError(f"sample must be a percentage 0-100 or null, got {sample!r}")
        rps = self.shadow_rps
        if rps is not KEEP and rps is not None and not _in_range(rps, 0.0, math.inf):
            raise SwitchesError(
                f"shadow_rps must be a number >= 0 (0 = no cap) or null, got {rps!r}"
            )
        for name, value in self.endpoints.items():
            check_endpoint_name(name)
            if value is not None and not isinstance(value, bool):
                raise SwitchesError(
                    f"endpoint {name!r}: mirror must be true or false, not {value!r}"
                )

    @property
    def empty(self) -> bool:
        return (
            self.killed is KEEP
            and self.sample is KEEP
            and self.shadow_rps is KEEP
            and not self.endpoints
        )

    @classmethod
    def parse(cls, data: object, *, endpoints_null_allowed: bool = True) -> Change:
        """A change from decoded JSON (an API body or stored state); :class:`SwitchesError` if bad.

        Accepted keys: ``killed``, ``sample``, ``shadow_rps``, ``endpoints`` (name to true, false,
        or null to clear); any other key is an error, so a typo is not silently ignored.
        """
        if not isinstance(data, dict):
            raise SwitchesError("expected a JSON object")
        unknown = sorted(set(data) - {"killed", "sample", "shadow_rps", "endpoints"})
        if unknown:
            raise SwitchesError(
                f"unknown field {unknown[0]!r} (known: killed, sample, shadow_rps, endpoints)"
            )
        endpoints = data.get("endpoints", {})
        if not isinstance(endpoints, dict):
            raise SwitchesError("endpoints must be an object of endpoint name to true/false")
        if not endpoints_null_allowed and any(v is None for v in endpoints.values()):
            raise SwitchesError("endpoints values must be true or false")
        return cls(
            killed=data.get("killed", KEEP),
            sample=_number_or_none(data, "sample"),
            shadow_rps=_number_or_none(data, "shadow_rps"),
            endpoints=MappingProxyType(dict(endpoints)),
        )

    def apply(self, switches: Switches, *, now: float | None = None) -> Switches:
        """The switches after this change, version bumped and ``updated_at`` set to ``now``."""
        endpoints = dict(switches.endpoints)
        for name, value in self.endpoints.items():
            if value is None:
                endpoints.pop(name, None)
            else:
                endpoints[name] = value
        if len(endpoints) > ENDPOINT_OVERRIDES_MAX:
            raise SwitchesError(
                f"too many endpoint overrides ({len(endpoints)} > {ENDPOINT_OVERRIDES_MAX}): "
                "clear some first"
            )
        return Switches(
            killed=switches.killed if self.killed is KEEP else self.killed,
            sample=switches.sample if self.sample is KEEP else _float(self.sample),
            shadow_rps=switches.shadow_rps if self.shadow_rps is KEEP else _float(self.shadow_rps),
            endpoints=_frozen(endpoints),
            version=switches.version + 1,
            updated_at=time.time() if now is None else now,
        )


def _number_or_none(data: Mapping[str, Any], key: str) -> Any:
    """The raw value (validated by Change itself), KEEP when absent."""
    return data.get(key, KEEP)


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def check_endpoint_name(name: object) -> str:
    """``name`` if it can name an endpoint override, else :class:`SwitchesError`."""
    if not isinstance(name, str) or not name.strip():
        raise SwitchesError("endpoint name must be a non-empty string")
    if len(name) > ENDPOINT_NAME_MAX:
        raise SwitchesError(f"endpoint name is longer than {ENDPOINT_NAME_MAX} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise SwitchesError("endpoint name must not contain control characters")
    return name
