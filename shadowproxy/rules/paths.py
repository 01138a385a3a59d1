"""Path rules and the matcher that finds them during one walk of a document.

A path pattern is a JSON Pointer whose tokens may be ``*`` (any one key or index) or ``**`` (any
number of them, including none). All patterns of an endpoint compile into one lazily built
deterministic automaton: each :class:`PathState` knows, for the keys any pattern names literally,
its successor, and one shared successor for every other key. The walk therefore pays one dict
lookup per key it descends into, whatever the number of rules, and never runs a regex per node.
States are built on first use and cached, so a document only pays for the paths it has.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from shadowproxy.rules import pointer
from shadowproxy.rules.values import (
    Coercion,
    Equivalence,
    Normalizer,
    TimestampRule,
    Tolerance,
)

STAR = "\x00*"
"""The ``*`` token in a compiled pattern (a string no real key can equal)."""
GLOBSTAR = "\x00**"
"""The ``**`` token in a compiled pattern."""

Pattern = tuple[str, ...]
_KEY_CACHE = 512
"""Most keys a state remembers the successor of (beyond them it recomputes: one set lookup)."""


def parse_pattern(text: str) -> Pattern:
    """A pattern's tokens. ``/list/*/id`` → ``("list", STAR, "id")``; ``**/x`` is ``/**/x``.

    Raises ``ValueError`` on a pattern that is neither ``""``, ``/...`` nor ``**...``.
    """
    if text.startswith("**"):
        text = "/" + text
    tokens = pointer.split(text)
    return tuple(STAR if t == "*" else GLOBSTAR if t == "**" else t for t in tokens)


def format_pattern(pattern: Pattern) -> str:
    """The pattern written back as text."""
    return "".join(
        "/*" if t == STAR else "/**" if t == GLOBSTAR else "/" + pointer.escape(t) for t in pattern
    )


@dataclass(frozen=True, slots=True)
class Unordered:
    """An array compared as a multiset (no ``keys``) or matched element by element on ``keys``."""

    keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PathRule:
    """What the rules say about one path. Several patterns may reach the same path: their rules are
    merged with :func:`merge` (flags add up; for everything else the first rule declared wins)."""

    ignore: bool = False
    critical: bool = False
    unordered: Unordered | None = None
    tolerance: Tolerance | None = None
    coerce: Coercion | None = None
    equivalent: Equivalence | None = None
    normalize: tuple[Normalizer, ...] = ()
    timestamp: TimestampRule | None = None

    @property
    def judges_values(self) -> bool:
        """True when a leaf here is judged by value rules rather than plain equality."""
        return bool(
            self.tolerance or self.coerce or self.equivalent or self.normalize or self.timestamp
        )


_RULE_FIELDS = tuple(f.name for f in fields(PathRule))


def merge(rules: Iterable[PathRule]) -> PathRule:
    """One rule from several reaching the same path, in declaration order."""
    values: dict[str, Any] = {}
    for rule in rules:
        for name in _RULE_FIELDS:
            value = getattr(rule, name)
            if name in ("ignore", "critical"):
                values[name] = values.get(name, False) or value
            elif value and not values.get(name):
                values[name] = value
    return PathRule(**values)


MatcherSpec = tuple[tuple[Pattern, PathRule], ...]
"""The compiled input of a matcher: (pattern, rule) pairs in declaration order."""


class PathState:
    """One state of the matcher: the rule (if any) at the current path and the way on."""

    __slots__ = (
        "_children",
        "_literals",
        "_matcher",
        "_numeric",
        "_other",
        "_positions",
        "dead",
        "ignore",
        "judges",
        "rule",
    )

    def __init__(self, matcher: PathMatcher, positions: frozenset[tuple[int, int]]) -> None:
        self._matcher = matcher
        self._positions = positions
        self._children: dict[str, PathState] = {}
        self._other: PathState | None = None
        patterns = matcher.patterns
        literals = {
            patterns[i][j]
            for i, j in positions
            if j < len(patterns[i]) and patterns[i][j] not in (STAR, GLOBSTAR)
        }
        self._literals = frozenset(literals)
        self._numeric = any(lit.isdigit() for lit in literals)
        finals = sorted(i for i, j in positions if j == len(patterns[i]))
        self.rule: PathRule | None = merge(matcher.rules[i] for i in finals) if finals else None
        # Flags read for every node the walk visits, precomputed from the rule.
        self.ignore = self.rule is not None and self.rule.ignore
        """True when the current path is ignored."""
        self.judges = self.rule is not None and self.rule.judges_values
        """True when values here are judged by value rules (tolerance, coerce, ...)."""
        self.dead = not positions
        """True when no pattern can match here or below: the walk needs no rule lookups."""

    def step(self, key: str) -> PathState:
        """The state for child ``key`` (an object key, or an array index as a decimal string)."""
        child = self._children.get(key)
        if child is not None:
            return child
        if key in self._literals:
            child = self._matcher.state_after(self._positions, key)
        else:
            child = self.step_other()
        # Remember the answer for this key too, up to a bound: object keys repeat from document
        # to document, but ids used as keys must not grow the cache without limit.
        if len(self._children) < _KEY_CACHE:
            self._children[key] = child
        return child

    def step_index(self, index: int) -> PathState:
        """The state for array element ``index``."""
        if self._numeric:
            return self.step(str(index))
        return self.step_other()

    def step_other(self) -> PathState:
        """The state for any key no pattern names literally here."""
        other = self._other
        if other is None:
            other = self._other = self._matcher.state_after(self._positions, None)
        return other


class PathMatcher:
    """All path rules of one endpoint, compiled. Pickles as its spec; rebuilt once per process."""

    __slots__ = ("_states", "patterns", "root", "rules", "spec")

    def __init__(self, spec: MatcherSpec) -> None:
        self.spec = spec
        self.patterns: tuple[Pattern, ...] = tuple(p for p, _ in spec)
        self.rules: tuple[PathRule, ...] = tuple(r for _, r in spec)
        self._states: dict[frozenset[tuple[int, int]], PathState] = {}
        self.root = self._state(self._close({(i, 0) for i in range(len(spec))}))

    def __reduce__(self) -> tuple[Any, tuple[MatcherSpec]]:
        return (compile_matcher, (self.spec,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PathMatcher) and other.spec == self.spec

    def __hash__(self) -> int:
        return hash(self.spec)

    def __repr__(self) -> str:
        return f"PathMatcher({[format_pattern(p) for p in self.patterns]})"

    def _close(self, positions: set[tuple[int, int]]) -> frozenset[tuple[int, int]]:
        # ``**`` also matches zero tokens: wherever one stands, the position after it is live too.
        todo = list(positions)
        while todo:
            i, j = todo.pop()
            pattern = self.patterns[i]
            if j < len(pattern) and pattern[j] == GLOBSTAR and (i, j + 1) not in positions:
                positions.add((i, j + 1))
                todo.append((i, j + 1))
        return frozenset(positions)

    def _state(self, positions: frozenset[tuple[int, int]]) -> PathState:
        state = self._states.get(positions)
        if state is None:
            state = self._states[positions] = PathState(self, positions)
        return state

    def state_after(self, positions: frozenset[tuple[int, int]], key: str | None) -> PathState:
        """The state reached from ``positions`` on ``key`` (``None``: a key no pattern names)."""
        nxt: set[tuple[int, int]] = set()
        for i, j in positions:
            pattern = self.patterns[i]
            if j >= len(pattern):
                continue
            token = pattern[j]
            if token == GLOBSTAR:
                nxt.add((i, j))
            elif token in (STAR, key):
                nxt.add((i, j + 1))
        return self._state(self._close(nxt))


@functools.lru_cache(maxsize=512)
def compile_matcher(spec: MatcherSpec) -> PathMatcher:
    """The matcher for ``spec``; cached, so a worker process builds each automaton once."""
    return PathMatcher(spec)
