"""The structural diff: one walk of both parsed JSON documents under an endpoint's path rules.

The walk is iterative (an explicit stack), so no document depth can exhaust the interpreter's
recursion limit. It skips equal subtrees cheaply: ``a == b`` on the parsed values runs in C, and,
because Python's ``==`` says ``True == 1`` and ``1 == 1.0``, an equal pair of containers is
confirmed by comparing their orjson serialisations (also C-fast) before it is skipped. Only
subtrees that differ are descended into, and only there are the path rules consulted.

Arrays are compared by position, except arrays of scalars, which are aligned as ``diff(1)``
aligns lines when that gives fewer differences (as DeepDiff does). Under
``unordered: {}`` an array is a multiset; under ``unordered: {key: ...}`` elements are matched by
key and compared one to one.
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from shadowproxy.model import Difference, DiffKind, Severity
from shadowproxy.rules.paths import PathRule, PathState
from shadowproxy.rules.pointer import escape
from shadowproxy.rules.ruleset import EndpointRules
from shadowproxy.rules.transform import apply as apply_transform
from shadowproxy.rules.values import (
    MISSING,
    canonical,
    coerce,
    instant,
    is_number,
    scalar_equal,
)

MAX_DIFFERENCES = 1000
"""A comparison stops collecting after this many differences (the verdict is a mismatch anyway)."""
MAX_ALIGNED = 4000
"""Arrays of scalars up to this many elements (both sides together) are aligned before they are
compared; longer ones are compared by position (alignment can cost up to quadratic time)."""
MAX_PAIRING_WORK = 10_000
"""Largest product of unmatched primary and shadow counts for which multiset elements that are
not identical are paired by rule-aware equality; beyond it they are reported missing and extra."""

LABEL_VALUE_CAP = 100
"""Longest key value spelled out in a label (``/list/[id=9174]``)."""
TOO_DEEP = "<nested too deep to show>"
"""Stands in a difference for a value too deeply nested to serialise (orjson stops at 255)."""

_SORT = orjson.OPT_SORT_KEYS
_CONTAINERS = (dict, list)

# A frame of the walk: primary value, shadow value, rule state, pointer into the primary, pointer
# into the shadow (None while it equals the primary's), template, label (None while it equals the
# pointer), and whether a critical rule covers this place.
_Frame = tuple[Any, Any, PathState, str, "str | None", str, "str | None", bool]


def _same(a: Any, b: Any) -> bool:
    """Exact JSON equality of two containers already ``==`` in Python (types of leaves included).

    Serialised, ``true`` is not ``1`` and ``1.0`` is not ``1``. Without key sorting first, which is
    twice as fast and enough whenever both sides list keys in the same order (the usual case).
    """
    try:
        return orjson.dumps(a) == orjson.dumps(b) or orjson.dumps(a, option=_SORT) == orjson.dumps(
            b, option=_SORT
        )
    except (orjson.JSONEncodeError, RecursionError):
        # Too deep for the serialiser: let the walk decide, level by level.
        return False


def _equal_fast(a: Any, b: Any) -> bool:
    """True when ``a`` and ``b`` are certainly identical JSON (False means: look closer)."""
    ta = type(a)
    if ta is not type(b):
        return False
    try:
        if a != b:
            return False
    except RecursionError:
        return False
    return ta not in _CONTAINERS or _same(a, b)


def _same_strings(a: list[Any], b: list[Any]) -> bool:
    """True when both arrays hold only strings, the same ones as multisets (the common case of
    tags and genres, decided without building any canonical forms)."""
    for value in a:
        if type(value) is not str:
            return False
    for value in b:
        if type(value) is not str:
            return False
    return sorted(a) == sorted(b)


def _all_scalars(values: list[Any]) -> bool:
    return not any(type(v) is dict or type(v) is list for v in values)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    kind = type(value)
    if kind is bool:
        return "boolean"
    if kind is int:
        return "integer"
    if kind is float:
        return "float"
    if kind is str:
        return "string"
    if kind is dict:
        return "object"
    return "array"


def _kind(a: Any, b: Any) -> DiffKind:
    if a is MISSING:
        return DiffKind.EXTRA
    if b is MISSING:
        return DiffKind.MISSING
    return DiffKind.VALUE if _json_type(a) == _json_type(b) else DiffKind.TYPE


def leaf_equal(rule: PathRule, a: Any, b: Any, int_float_equal: bool) -> bool:
    """Whether two values (either may be :data:`MISSING`) are equal under ``rule``'s value rules."""
    if rule.coerce is not None:
        if a is not MISSING:
            a = coerce(a, rule.coerce)
        if b is not MISSING:
            b = coerce(b, rule.coerce)
    if rule.normalize and type(a) is str and type(b) is str:
        for normalizer in rule.normalize:
            a = normalizer.apply(a)
            b = normalizer.apply(b)
    if rule.equivalent is not None and rule.equivalent.same(a, b):
        return True
    if a is MISSING or b is MISSING:
        return False
    if rule.timestamp is not None:
        ia, ib = instant(a), instant(b)
        if ia is not None and ib is not None:
            return abs(ia - ib) <= rule.timestamp.tolerance_s
    if rule.tolerance is not None and is_number(a) and is_number(b):
        return rule.tolerance.within(a, b)
    if type(a) in _CONTAINERS or type(b) in _CONTAINERS:
        return _equal_fast(a, b)
    return scalar_equal(a, b, int_float_equal)


def _key_canonical(value: Any) -> tuple[Any, ...]:
    """The form of a key field used to match elements: ``"9174"`` matches ``9174`` (the field's
    own difference is still reported when the elements are compared)."""
    if type(value) is str:
        text = value.strip()
        if text.lstrip("-").isdigit():
            return ("number", int(text))
    return canonical(value)


def _field(element: dict[str, Any], key: str) -> Any:
    """``element``'s key field; ``franchise/id`` reaches into a nested object."""
    if "/" not in key:
        return element.get(key, MISSING)
    value: Any = element
    for token in key.split("/"):
        if type(value) is not dict:
            return MISSING
        value = value.get(token, MISSING)
    return value


def _identity(element: Any, keys: tuple[str, ...]) -> tuple[Any, ...] | None:
    """The key an element is matched on, or ``None`` when it is not an object with all keys."""
    if type(element) is not dict:
        return None
    ident = []
    for key in keys:
        value = _field(element, key)
        if value is MISSING:
            return None
        ident.append(_key_canonical(value))
    return tuple(ident)


def _key_label(keys: tuple[str, ...], element: dict[str, Any]) -> str:
    parts = []
    for key in keys:
        value = shorten(_field(element, key), LABEL_VALUE_CAP)
        shown = value if type(value) is str else orjson.dumps(value).decode()
        parts.append(f"{key}={shown}")
    return "[" + ",".join(parts) + "]"


def shorten(value: Any, cap: int | None = None) -> Any:
    """``value`` as a difference carries it: every sink must be able to serialise it, and with a
    ``cap`` no string or serialised container longer than ``cap`` is carried whole."""
    kind = type(value)
    if kind is dict or kind is list:
        try:
            size = len(orjson.dumps(value))
        except (orjson.JSONEncodeError, RecursionError):
            return TOO_DEEP
        if cap is not None and size > cap:
            noun = "object" if kind is dict else "array"
            return f"<{noun} of {size} bytes, too large to show>"
    elif kind is str and cap is not None and len(value) > cap:
        return f"{value[:cap]}… <{len(value) - cap} more characters>"
    return value


class _Walk:
    """One comparison's walk; collects differences into ``out`` up to ``limit``."""

    __slots__ = ("int_float_equal", "limit", "out", "value_cap")

    def __init__(self, int_float_equal: bool, limit: int, value_cap: int | None = None) -> None:
        self.int_float_equal = int_float_equal
        self.limit = limit
        self.value_cap = value_cap
        self.out: list[Difference] = []

    def report(
        self,
        a: Any,
        b: Any,
        ptr: str,
        sptr: str | None,
        tmpl: str,
        label: str | None,
        crit: bool,
    ) -> None:
        kind = _kind(a, b)
        self.out.append(
            Difference(
                pointer=(sptr if sptr is not None else ptr) if kind is DiffKind.EXTRA else ptr,
                template=tmpl,
                kind=kind,
                primary=None if a is MISSING else shorten(a, self.value_cap),
                shadow=None if b is MISSING else shorten(b, self.value_cap),
                severity=Severity.CRITICAL if crit else Severity.NORMAL,
                label=label or "",
            )
        )

    def run(self, frame: _Frame) -> None:
        stack: list[_Frame] = [frame]
        dumps = orjson.dumps
        out = self.out
        limit = self.limit
        ife = self.int_float_equal
        while stack:
            if len(out) >= limit:
                return
            a, b, state, ptr, sptr, tmpl, label, crit = stack.pop()
            rule = state.rule
            if rule is not None:
                if state.ignore:
                    continue
                if rule.critical:
                    crit = True
                if state.judges and not (type(a) in _CONTAINERS and type(b) in _CONTAINERS):
                    if not leaf_equal(rule, a, b, ife):
                        self.report(a, b, ptr, sptr, tmpl, label, crit)
                    continue
            if a is MISSING or b is MISSING:
                self.report(a, b, ptr, sptr, tmpl, label, crit)
                continue
            ta, tb = type(a), type(b)
            if ta is dict and tb is dict:
                children: list[_Frame] = []
                dead = state.dead
                step = state.step
                try:
                    # One tight pass finds the keys worth a closer look: absent in the shadow, of
                    # another type, unequal, or equal only by Python's loose == (True == 1).
                    changed = [
                        key
                        for key, va in a.items()
                        if (vb := b.get(key, MISSING)) is MISSING
                        or (kind := type(va)) is not type(vb)
                        or va != vb
                        or (
                            (kind is dict or kind is list)
                            and dumps(va) != dumps(vb)
                            and dumps(va, option=_SORT) != dumps(vb, option=_SORT)
                        )
                    ]
                except (RecursionError, orjson.JSONEncodeError):
                    # Too deep for == or the serialiser: look at every key, level by level.
                    changed = list(a)
                for key in changed:
                    va = a[key]
                    vb = b.get(key, MISSING)
                    if dead:
                        child = state
                    else:
                        child = step(key)
                        # Ignored, or two scalars equal under value rules (a rating within its
                        # tolerance): settle it here, before building a frame and pointers.
                        if child.ignore:
                            continue
                        judged = child.rule
                        if (
                            judged is not None
                            and child.judges
                            and vb is not MISSING
                            and type(va) not in _CONTAINERS
                            and type(vb) not in _CONTAINERS
                            and leaf_equal(judged, va, vb, ife)
                        ):
                            continue
                    token = "/" + escape(key)
                    children.append(
                        (
                            va,
                            vb,
                            child,
                            ptr + token,
                            None if sptr is None else sptr + token,
                            tmpl + token,
                            None if label is None else label + token,
                            crit,
                        )
                    )
                if len(a) != len(b) or a.keys() != b.keys():
                    for key, vb in b.items():
                        if key not in a:
                            token = "/" + escape(key)
                            children.append(
                                (
                                    MISSING,
                                    vb,
                                    state if dead else state.step(key),
                                    ptr + token,
                                    None if sptr is None else sptr + token,
                                    tmpl + token,
                                    None if label is None else label + token,
                                    crit,
                                )
                            )
                stack.extend(reversed(children))
            elif ta is list and tb is list:
                if rule is not None and rule.unordered is not None:
                    pairs = self._unordered(a, b, state, ptr, sptr, tmpl, label, crit, rule)
                else:
                    pairs = self._ordered(a, b, state, ptr, sptr, tmpl, label, crit)
                stack.extend(reversed(pairs))
            elif not scalar_equal(a, b, ife):
                self.report(a, b, ptr, sptr, tmpl, label, crit)

    def _ordered(
        self,
        a: list[Any],
        b: list[Any],
        state: PathState,
        ptr: str,
        sptr: str | None,
        tmpl: str,
        label: str | None,
        crit: bool,
    ) -> list[_Frame]:
        dead = state.dead
        ttok = tmpl + "/*"
        frames: list[_Frame] = []

        def frame(i: int | None, j: int | None) -> None:
            va = a[i] if i is not None else MISSING
            vb = b[j] if j is not None else MISSING
            index = i if i is not None else j
            assert index is not None
            stok = None
            if j is not None and (sptr is not None or j != index):
                stok = f"{ptr if sptr is None else sptr}/{j}"
            frames.append(
                (
                    va,
                    vb,
                    state if dead else state.step_index(index),
                    f"{ptr}/{index}",
                    stok,
                    ttok,
                    None if label is None else f"{label}/{index}",
                    crit,
                )
            )

        if len(a) + len(b) <= MAX_ALIGNED and _all_scalars(a) and _all_scalars(b):
            aligned = self._aligned(a, b, frame, frames)
            if aligned is not None:
                return aligned
        # Position by position (lists of objects are better matched by key, with ``unordered``).
        for i, (va, vb) in enumerate(zip(a, b, strict=False)):
            if not _equal_fast(va, vb):
                frame(i, i)
        for i in range(len(b), len(a)):
            frame(i, None)
        for j in range(len(a), len(b)):
            frame(None, j)
        return frames

    @staticmethod
    def _aligned(
        a: list[Any],
        b: list[Any],
        frame: Callable[[int | None, int | None], None],
        frames: list[_Frame],
    ) -> list[_Frame] | None:
        """Scalars aligned as diff(1) aligns lines; ``None`` when that gives more differences than
        comparing by position (then position wins, as in DeepDiff)."""
        matcher = difflib.SequenceMatcher(
            None, [canonical(x) for x in a], [canonical(x) for x in b], autojunk=False
        )
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                continue
            common = min(i2 - i1, j2 - j1)
            for offset in range(common):
                if not _equal_fast(a[i1 + offset], b[j1 + offset]):
                    frame(i1 + offset, j1 + offset)
            for i in range(i1 + common, i2):
                frame(i, None)
            for j in range(j1 + common, j2):
                frame(None, j)
        if len(frames) <= 1:
            return frames
        positional = abs(len(a) - len(b)) + sum(
            not _equal_fast(x, y) for x, y in zip(a, b, strict=False)
        )
        if len(frames) < positional:
            return frames
        frames.clear()
        return None

    def _unordered(
        self,
        a: list[Any],
        b: list[Any],
        state: PathState,
        ptr: str,
        sptr: str | None,
        tmpl: str,
        label: str | None,
        crit: bool,
        rule: PathRule,
    ) -> list[_Frame]:
        assert rule.unordered is not None
        keys = rule.unordered.keys
        element_state = state.step_other()
        base_s = ptr if sptr is None else sptr
        base_l = ptr if label is None else label
        ttok = tmpl + "/*"
        frames: list[_Frame] = []
        loose_a: list[int] = []
        loose_b: list[int] = []
        if keys:
            idents_b = [_identity(element, keys) for element in b]
            by_key: dict[tuple[Any, ...], deque[int]] = {}
            for j, ident in enumerate(idents_b):
                if ident is None:
                    loose_b.append(j)
                else:
                    by_key.setdefault(ident, deque()).append(j)
            matched_b: set[int] = set()
            for i, element in enumerate(a):
                ident = _identity(element, keys)
                if ident is None:
                    loose_a.append(i)
                    continue
                queue = by_key.get(ident)
                if not queue:
                    tag = f"{base_l}/{_key_label(keys, element)}"
                    frames.append(
                        (element, MISSING, element_state, f"{ptr}/{i}", None, ttok, tag, crit)
                    )
                    continue
                j = queue.popleft()
                matched_b.add(j)
                if not _equal_fast(element, b[j]):
                    # The label is built only for a pair that is not identical.
                    tag = f"{base_l}/{_key_label(keys, element)}"
                    stok = None if (sptr is None and i == j) else f"{base_s}/{j}"
                    frames.append(
                        (element, b[j], element_state, f"{ptr}/{i}", stok, ttok, tag, crit)
                    )
            for j, ident in enumerate(idents_b):
                if ident is not None and j not in matched_b:
                    tag = f"{base_l}/{_key_label(keys, b[j])}"
                    frames.append(
                        (
                            MISSING,
                            b[j],
                            element_state,
                            f"{ptr}/{j}",
                            f"{base_s}/{j}",
                            ttok,
                            tag,
                            crit,
                        )
                    )
        else:
            loose_a = list(range(len(a)))
            loose_b = list(range(len(b)))
        if loose_a or loose_b:
            self._multiset(
                a, b, loose_a, loose_b, element_state, ptr, base_s, ttok, label, crit, frames
            )
        return frames

    def _multiset(
        self,
        a: list[Any],
        b: list[Any],
        left: list[int],
        right: list[int],
        element_state: PathState,
        ptr: str,
        base_s: str,
        ttok: str,
        label: str | None,
        crit: bool,
        frames: list[_Frame],
    ) -> None:
        # Identical elements cancel out by count; what is left is paired by rule-aware equality
        # when that is affordable, else reported as missing and extra.
        if len(left) == len(right) == len(a) == len(b) and _same_strings(a, b):
            return
        pool: dict[tuple[Any, ...], deque[int]] = {}
        for j in right:
            pool.setdefault(canonical(b[j]), deque()).append(j)
        rest_a: list[int] = []
        for i in left:
            queue = pool.get(canonical(a[i]))
            if queue:
                queue.popleft()
            else:
                rest_a.append(i)
        rest_b = sorted(j for queue in pool.values() for j in queue)
        if rest_a and rest_b and len(rest_a) * len(rest_b) <= MAX_PAIRING_WORK:
            unpaired_a = []
            for i in rest_a:
                for position, j in enumerate(rest_b):
                    if equal_under(a[i], b[j], element_state, self.int_float_equal):
                        del rest_b[position]
                        break
                else:
                    unpaired_a.append(i)
            rest_a = unpaired_a
        for i in rest_a:
            frames.append(
                (
                    a[i],
                    MISSING,
                    element_state,
                    f"{ptr}/{i}",
                    None,
                    ttok,
                    None if label is None else f"{label}/{i}",
                    crit,
                )
            )
        for j in rest_b:
            frames.append(
                (
                    MISSING,
                    b[j],
                    element_state,
                    f"{ptr}/{j}",
                    f"{base_s}/{j}",
                    ttok,
                    None if label is None else f"{label}/{j}",
                    crit,
                )
            )


def equal_under(a: Any, b: Any, state: PathState, int_float_equal: bool) -> bool:
    """Whether ``a`` and ``b`` have no difference under the rules from ``state`` down."""
    walk = _Walk(int_float_equal, 1)
    walk.run((a, b, state, "", None, "", None, False))
    return not walk.out


def _copy(document: Any) -> Any:
    try:
        return orjson.loads(orjson.dumps(document))
    except (orjson.JSONEncodeError, RecursionError):
        # Too deep to copy this way (over 255 levels): transform the document itself.
        return document


def diff_documents(
    primary: Any,
    shadow: Any,
    rules: EndpointRules,
    *,
    limit: int = MAX_DIFFERENCES,
    value_cap: int | None = None,
) -> list[Difference]:
    """The differences between two parsed JSON documents under ``rules``, in document order.

    At most ``limit`` differences are listed. With ``value_cap``, values longer than that (strings
    in characters, containers serialised in bytes) are shown shortened in the differences.
    Transforms, when the rules have any, work on copies: the inputs are not changed (except
    documents nested deeper than 255 levels, which are transformed in place).
    """
    if rules.transform_primary:
        primary = apply_transform(_copy(primary), rules.transform_primary)
    if rules.transform_shadow:
        shadow = apply_transform(_copy(shadow), rules.transform_shadow)
    walk = _Walk(rules.int_float_equal, limit, value_cap)
    walk.run((primary, shadow, rules.matcher.root, "", None, "", None, False))
    return walk.out
