"""The structural diff without rules: agreement with DeepDiff, JSON Patch round trips, pointer
escaping, and safety on hostile documents."""

from __future__ import annotations

import re
import time
from typing import Any

import jsonpatch
import orjson
from deepdiff import DeepDiff
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from shadowproxy.compare.differ import diff_documents, equal_under
from shadowproxy.compare.patch import to_json_patch
from shadowproxy.model import DiffKind
from shadowproxy.rules import EndpointRules
from shadowproxy.rules.pointer import escape

EXACT = EndpointRules(name=None)

keys = st.sampled_from(["id", "a", "b", "names", "x/y", "m~n", "~1", "\u0440\u0443", ""])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    # No 0 or 1: DeepDiff aligns arrays with Python's ==, for which True == 1 (we do not).
    st.integers(min_value=2, max_value=9) | st.integers(min_value=-5, max_value=-1),
    st.floats(allow_nan=False, allow_infinity=False, width=32).filter(lambda f: not f.is_integer()),
    st.sampled_from(["", "a", "b", "Комедия", "9174"]),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(keys, inner, max_size=5),
    ),
    max_leaves=25,
)


def mutate(data: st.DataObject, doc: Any, depth: int = 0) -> Any:
    """A copy of ``doc`` with a few realistic edits: values changed, keys added and removed,
    elements inserted, dropped or replaced, types changed."""
    if isinstance(doc, dict):
        out = {}
        for key, value in doc.items():
            choice = data.draw(st.integers(0, 9))
            if choice == 0:
                continue
            out[key] = mutate(data, value, depth + 1) if choice > 2 else data.draw(documents)
        if data.draw(st.integers(0, 4)) == 0:
            out[data.draw(keys)] = data.draw(documents)
        return out
    if isinstance(doc, list):
        items = [mutate(data, v, depth + 1) for v in doc if data.draw(st.integers(0, 7))]
        if data.draw(st.integers(0, 3)) == 0:
            items.insert(data.draw(st.integers(0, len(items))), data.draw(documents))
        return items
    if data.draw(st.integers(0, 2)) == 0:
        return data.draw(scalars)
    return doc


_DD_TOKEN = re.compile(r"\['((?:[^'\\]|\\.)*)'\]|\[\"((?:[^\"\\]|\\.)*)\"\]|\[(\d+)\]")


def deepdiff_pointers(a: Any, b: Any) -> set[str]:
    """DeepDiff's changed paths as RFC 6901 pointers (into A, or into B for additions)."""
    # threshold_to_diff_deeper=0: report keys one by one even when no key is shared.
    result = DeepDiff(a, b, verbose_level=2, threshold_to_diff_deeper=0)
    out = set()
    for section in result.values():
        for path in section:
            tokens = []
            for match in _DD_TOKEN.finditer(path[len("root") :]):
                single, double, index = match.groups()
                raw = single if single is not None else double if double is not None else index
                tokens.append(raw.encode().decode("unicode_escape") if "\\" in raw else raw)
            out.add("".join("/" + escape(t) for t in tokens))
    return out


def int_float_blind(doc: Any) -> bool:
    """True when the document has no integral floats (24.0), where we and DeepDiff disagree by
    design (24 equals 24.0 here by default)."""
    if isinstance(doc, float):
        return not doc.is_integer()
    if isinstance(doc, dict):
        return all(int_float_blind(v) for v in doc.values())
    if isinstance(doc, list):
        return all(int_float_blind(v) for v in doc)
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_changed_pointers_equal_deepdiffs(data: st.DataObject) -> None:
    """Without rules, the set of changed pointers is DeepDiff's (paths translated)."""
    a = data.draw(documents)
    b = mutate(data, a)
    note(f"a={a!r} b={b!r}")
    ours = {d.pointer for d in diff_documents(a, b, EXACT)}
    assert deepdiff_pointers(a, b) == ours


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_json_patch_turns_a_into_b(data: st.DataObject) -> None:
    """The JSON Patch of the differences, applied to A with the jsonpatch package, yields B."""
    a = data.draw(documents)
    b = mutate(data, a)
    patch = to_json_patch(diff_documents(a, b, EXACT))
    result = jsonpatch.apply_patch(orjson.loads(orjson.dumps(a)), patch)
    assert orjson.dumps(b, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        result, option=orjson.OPT_SORT_KEYS
    )


@given(documents)
def test_a_document_equals_itself(doc: Any) -> None:
    """diff(x, x) is empty."""
    assert [] == diff_documents(doc, orjson.loads(orjson.dumps(doc)), EXACT)
    assert equal_under(doc, doc, EXACT.matcher.root, True)


def test_escaping_of_tilde_and_slash() -> None:
    """Keys holding ``~`` and ``/`` are escaped in pointers (``~0``, ``~1``), in that order."""
    diffs = diff_documents({"a/b": {"~1": 1}}, {"a/b": {"~1": 2}}, EXACT)
    assert ["/a~1b/~01"] == [d.pointer for d in diffs]


def test_bool_is_not_one_and_int_float_follows_setting() -> None:
    """``true`` and ``1`` are a type difference although Python says they are equal; ``24`` and
    ``24.0`` are equal by default and a type difference when int_float_equal is off."""
    assert [DiffKind.TYPE] == [d.kind for d in diff_documents([{"x": True}], [{"x": 1}], EXACT)]
    assert [] == diff_documents({"n": 24}, {"n": 24.0}, EXACT)
    strict = EndpointRules(name=None, int_float_equal=False)
    assert [DiffKind.TYPE] == [d.kind for d in diff_documents({"n": 24}, {"n": 24.0}, strict)]


def test_insertion_in_list_is_one_extra_not_positional_noise() -> None:
    """An element inserted at the front of an ordered list is one ``extra``, not a change of
    every element after it."""
    diffs = diff_documents({"l": [1, 2, 3, 4]}, {"l": [0, 1, 2, 3, 4]}, EXACT)
    assert [("/l/0", DiffKind.EXTRA)] == [(d.pointer, d.kind) for d in diffs]


def test_deep_nesting_does_not_recurse() -> None:
    """A document nested far deeper than Python's recursion limit is walked without error."""
    depth = 5000
    a: Any = 1
    b: Any = 2
    for _ in range(depth):
        a, b = [a], [b]
    diffs = diff_documents(a, b, EXACT)
    assert [("/0" * depth, DiffKind.VALUE)] == [(d.pointer, d.kind) for d in diffs]


def test_large_document_with_one_change_is_fast_enough() -> None:
    """A 50 MB document with one change is compared in bounded time with one difference."""
    big = ["x" * 100] * 500_000
    changed = list(big)
    changed[400_000] = "y"
    started = time.perf_counter()
    diffs = diff_documents(big, changed, EXACT)
    assert [("/400000", DiffKind.VALUE)] == [(d.pointer, d.kind) for d in diffs]
    assert time.perf_counter() - started < 60  # a hang guard, not a benchmark


def test_difference_count_is_capped() -> None:
    """A comparison stops at the difference limit instead of listing millions."""
    diffs = diff_documents(list(range(10_000)), [-1] * 10_000, EXACT, limit=50)
    assert 50 == len(diffs)


def test_too_deep_values_are_shown_as_a_marker() -> None:
    """A value nested too deep to serialise is replaced in the difference by a marker, so the
    store and the CLI can always write it."""
    deep: Any = 1
    for _ in range(400):
        deep = [deep]
    diffs = diff_documents({"a": deep}, {}, EXACT)
    assert [("/a", DiffKind.MISSING, "<nested too deep to show>")] == [
        (d.pointer, d.kind, d.primary) for d in diffs
    ]
