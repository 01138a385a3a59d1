"""A loaded rule file: endpoints in order, each with the compiled rules the comparator applies.

:meth:`Ruleset.resolve` runs on the serving loop for every request, so everything it needs is
compiled at load time: a method set, one anchored regex per endpoint path, and the
:class:`EndpointRules` object itself, which is shared (never built per request).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shadowproxy.rules.paths import PathMatcher, compile_matcher
from shadowproxy.rules.transform import TransformOp
from shadowproxy.rules.values import Normalizer

DEFAULT_HEADERS = ("content-type",)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Mirrored unless a rule says otherwise."""


@dataclass(frozen=True, slots=True)
class HeaderRule:
    """A response header that is compared, and how its values are normalised first."""

    name: str
    """Lower-case header name."""
    normalize: tuple[Normalizer, ...] = ()


@dataclass(frozen=True, slots=True)
class EndpointRules:
    """Everything the proxy and the comparator need to know about one endpoint.

    Picklable and cheap to pickle: it travels to comparator worker processes with each exchange
    (its matcher pickles as its spec and is rebuilt once per process).
    """

    name: str | None
    """The rule's name; ``None`` for the defaults (the proxy then auto-templates the path)."""
    mirror: bool | None = None
    """Whether to mirror; ``None`` means the default policy (GET, HEAD, OPTIONS only)."""
    sample: float | None = None
    """Percentage (0..100) of requests to mirror; ``None`` means the global setting."""
    redact: tuple[str, ...] = ()
    """JSON body paths (pointers with ``*``/``**``) or bare field names to redact before storing."""
    matcher: PathMatcher = field(default_factory=lambda: compile_matcher(()))
    """The path rules (ignore, unordered, tolerance, ...) compiled into one automaton."""
    int_float_equal: bool = True
    """Whether ``24`` equals ``24.0``."""
    headers: tuple[HeaderRule, ...] = tuple(HeaderRule(h) for h in DEFAULT_HEADERS)
    """Response headers compared; all others are ignored."""
    status_classes: tuple[frozenset[int], ...] = ()
    """Sets of status codes that count as equal (e.g. {200, 201})."""
    transform_primary: tuple[TransformOp, ...] = ()
    transform_shadow: tuple[TransformOp, ...] = ()

    def status_equal(self, primary: int, shadow: int) -> bool:
        """True when the two status codes are equal or declared equivalent."""
        if primary == shadow:
            return True
        return any(primary in cls and shadow in cls for cls in self.status_classes)


DEFAULT_RULES = EndpointRules(name=None)
"""The built-in defaults: exact comparison, Content-Type compared."""


@dataclass(frozen=True, slots=True)
class Condition:
    """A query-parameter or header condition: present with a value, present at all, or absent."""

    name: str
    value: str | None
    """The exact value required; ``"*"`` any value; ``None`` means the parameter must be absent."""

    def holds(self, actual: str | None) -> bool:
        if self.value is None:
            return actual is None
        if actual is None:
            return False
        return self.value == "*" or actual == self.value


@dataclass(frozen=True, slots=True)
class EndpointMatch:
    """The ``match`` block of one endpoint, compiled."""

    methods: frozenset[str] | None
    """Upper-case methods; ``None`` matches any."""
    path: str
    """The pattern as written (``/v3/title/{id}``)."""
    regex: re.Pattern[str]
    query: tuple[Condition, ...] = ()
    headers: tuple[Condition, ...] = ()

    def matches(
        self, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str]
    ) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        if self.regex.fullmatch(path) is None:
            return False
        for cond in self.query:
            if not cond.holds(query.get(cond.name)):
                return False
        return all(cond.holds(_header(headers, cond.name)) for cond in self.headers)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    for key, val in headers.items():
        if key.lower() == name:
            return val
    return None


_PARAM = re.compile(r"\{[^/{}]*\}")


def compile_path(pattern: str) -> re.Pattern[str]:
    """One anchored regex for an endpoint path pattern: ``{name}`` and ``*`` match one segment,
    ``**`` any number; a trailing slash on the request is tolerated."""
    parts: list[str] = []
    segments = pattern.strip("/").split("/") if pattern.strip("/") else []
    for segment in segments:
        if segment == "**":
            # "/**" also matches the bare prefix ("/v3/**" matches "/v3").
            parts.append("(?:/.*)?")
            continue
        pieces = []
        last = 0
        for found in _PARAM.finditer(segment):
            pieces.append(re.escape(segment[last : found.start()]))
            pieces.append("[^/]+")
            last = found.end()
        tail = segment[last:]
        pieces.append("[^/]*".join(re.escape(p) for p in tail.split("*")))
        parts.append("/" + "".join(pieces))
    return re.compile("".join(parts) + "/?")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One ``endpoints`` entry: how to recognise it, and its rules."""

    match: EndpointMatch
    rules: EndpointRules
    line: int = 0
    """Line of the entry in the rule file (1-based), for messages; 0 when unknown."""


@dataclass(frozen=True, slots=True)
class Ruleset:
    """The rules in force: ``resolve`` a request to its endpoint's rules (first match wins)."""

    version: str
    """Short hash of the rule file's content (of the built-in defaults when there is no file)."""
    source: Path | None
    endpoints: tuple[Endpoint, ...] = ()
    defaults: EndpointRules = DEFAULT_RULES

    def resolve(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
    ) -> EndpointRules:
        """The first matching endpoint's rules, else the defaults (``name=None``)."""
        for endpoint in self.endpoints:
            if endpoint.match.matches(method, path, query, headers):
                return endpoint.rules
        return self.defaults

    def endpoint_names(self) -> tuple[str, ...]:
        """Names of the endpoints that have one, in file order, without repeats."""
        seen: dict[str, None] = {}
        for endpoint in self.endpoints:
            if endpoint.rules.name is not None:
                seen.setdefault(endpoint.rules.name, None)
        return tuple(seen)

    def by_name(self, name: str) -> EndpointRules | None:
        """The rules of the endpoint called ``name``, or ``None``."""
        for endpoint in self.endpoints:
            if endpoint.rules.name == name:
                return endpoint.rules
        return None
