"""The structural diff under rules: each rule's effect, and the properties rules must keep."""

from __future__ import annotations

import copy
import functools
import random
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from shadowproxy.compare.differ import diff_documents
from shadowproxy.model import DiffKind, Severity
from shadowproxy.rules import EndpointRules, parse_ruleset
from tests.compare.test_differ import documents, keys, mutate
from tests.factories import title_document


@functools.lru_cache(maxsize=256)
def rules(block: str) -> EndpointRules:
    """The defaults of a rule file whose ``defaults`` block is ``block`` (YAML flow mapping)."""
    return parse_ruleset(f"version: 1\ndefaults: {block}\n").defaults


def where(diffs: list[Any]) -> list[tuple[str, str]]:
    return [(d.where, str(d.kind)) for d in diffs]


def title_list(count: int = 5) -> dict[str, Any]:
    return {
        "list": [title_document(9000 + i) for i in range(count)],
        "pagination": {"pages": 3, "current_page": 1, "items_per_page": count, "total_items": 14},
    }


def test_ignore_paths_with_star_and_globstar() -> None:
    """Ignored paths (``*`` one level, ``**`` any depth) produce no differences; others still do."""
    a = title_list()
    b = copy.deepcopy(a)
    for title in b["list"]:
        title["updated"] += 60
        title["in_favorites"] += 1
    b["list"][2]["names"]["en"] = "Changed"
    r = rules('{ignore: [/list/*/updated, "**/in_favorites"]}')
    assert [("/list/2/names/en", "value")] == where(diff_documents(a, b, r))


def test_unordered_by_key_reports_per_element_with_labels() -> None:
    """Arrays matched by key: a reorder is no difference; changes are reported per matched element
    with an ``[id=...]`` label and the primary's pointer; unmatched elements are missing/extra."""
    a = title_list(4)
    b = copy.deepcopy(a)
    b["list"].reverse()
    b["list"][0]["names"]["ru"] = "Другое"  # the element with id 9003, at index 3 in A
    b["list"].pop(1)  # id 9002
    b["list"].append(title_document(9999))
    r = rules("{unordered: {/list: {key: id}}}")
    diffs = diff_documents(a, b, r)
    assert [
        ("/list/[id=9002]", "missing"),
        ("/list/[id=9003]/names/ru", "value"),
        ("/list/[id=9999]", "extra"),
    ] == where(diffs)
    assert ["/list/2", "/list/3/names/ru", "/list/3"] == [d.pointer for d in diffs]
    assert "/list/*/names/ru" == diffs[1].template


def test_unordered_by_several_keys_and_string_ids() -> None:
    """Keys can be several fields; an id sent as a string still finds its element, and the type
    difference of the id itself is reported."""
    a = {"l": [{"id": 1, "lang": "ru", "v": 1}, {"id": 1, "lang": "en", "v": 2}]}
    b = {"l": [{"id": 1, "lang": "en", "v": 2}, {"id": "1", "lang": "ru", "v": 1}]}
    diffs = diff_documents(a, b, rules("{unordered: {/l: {key: [id, lang]}}}"))
    assert [("/l/[id=1,lang=ru]/id", "type")] == where(diffs)


def test_unordered_multiset() -> None:
    """Multiset arrays: order is ignored, multiplicity is not."""
    r = rules("{unordered: [/genres]}")
    assert [] == diff_documents({"genres": ["a", "b", "b"]}, {"genres": ["b", "a", "b"]}, r)
    assert [("/genres/2", "missing")] == where(
        diff_documents({"genres": ["a", "b", "b"]}, {"genres": ["b", "a"]}, r)
    )


def test_unordered_multiset_pairs_elements_under_nested_rules() -> None:
    """Multiset elements equal only under rules below them (here an ignored field) still pair."""
    r = rules("{unordered: [/l], ignore: [/l/*/t]}")
    a = {"l": [{"k": 1, "t": 5}, {"k": 2, "t": 6}]}
    b = {"l": [{"k": 2, "t": 9}, {"k": 1, "t": 8}]}
    assert [] == diff_documents(a, b, r)


def test_tolerance_absolute_and_relative() -> None:
    """Numbers within an absolute or relative tolerance are equal; beyond it they differ."""
    r = rules("{tolerance: {/rating: {abs: 0.01}, /views: {rel: 0.05}}}")
    assert [] == diff_documents({"rating": 8.7, "views": 1000}, {"rating": 8.705, "views": 1040}, r)
    assert [("/rating", "value"), ("/views", "value")] == where(
        diff_documents({"rating": 8.7, "views": 1000}, {"rating": 8.72, "views": 1100}, r)
    )


def test_int_float_equal_setting() -> None:
    """``numbers: {int_float_equal: false}`` makes 24 and 24.0 a type difference."""
    r = rules("{numbers: {int_float_equal: false}}")
    assert [("/n", "type")] == where(diff_documents({"n": 24}, {"n": 24.0}, r))


def test_coerce() -> None:
    """Coercion: "9174" equals 9174, "true" equals true; a real difference stays one."""
    r = rules("{coerce: {/id: number, /ok: boolean, /code: string}}")
    assert [] == diff_documents(
        {"id": 9174, "ok": True, "code": 7}, {"id": "9174", "ok": "true", "code": "7"}, r
    )
    assert [("/id", "type")] == where(diff_documents({"id": 9174}, {"id": "9175"}, r))


def test_equivalent_values_including_missing() -> None:
    """null, "" and an absent key are one class; other values still differ."""
    r = rules('{equivalent: {/names/alternative: [null, "", missing]}}')
    assert [] == diff_documents({"names": {"alternative": None}}, {"names": {}}, r)
    assert [] == diff_documents({"names": {"alternative": ""}}, {"names": {"alternative": None}}, r)
    assert [("/names/alternative", "value")] == where(
        diff_documents({"names": {"alternative": "x"}}, {"names": {"alternative": ""}}, r)
    )
    assert [("/names/alternative", "missing")] == where(
        diff_documents({"names": {"alternative": "x"}}, {"names": {}}, r)
    )


def test_normalize_strings() -> None:
    """Regex replace, trim, case fold and NFC apply to both sides before comparing."""
    r = rules(
        '{normalize: {"/posters/**/url": {regex: "^https?://[^/]+", replace: ""},'
        " /name: [{trim: true}, {casefold: true}, {nfc: true}]}}"
    )
    a = {"posters": {"small": {"url": "https://a.example/p/1.jpg"}}, "name": "Café"}
    b = {"posters": {"small": {"url": "/p/1.jpg"}}, "name": "  CAFE\u0301 "}
    assert [] == diff_documents(a, b, r)


def test_timestamps_any_format_with_tolerance() -> None:
    """ISO 8601 with any offset, epoch seconds and epoch milliseconds are instants compared within
    the tolerance."""
    r = rules("{timestamps: {/t: {tolerance_s: 2}}}")
    same = [
        ("2024-05-01T12:00:00Z", "2024-05-01T15:00:01+03:00"),
        (1714564800, "2024-05-01T12:00:01.500Z"),
        (1714564800, 1714564801000),
        ("2024-05-01T12:00:00", 1714564800.5),
    ]
    for left, right in same:
        assert [] == diff_documents({"t": left}, {"t": right}, r), (left, right)
    assert [("/t", "value")] == where(diff_documents({"t": 1714564800}, {"t": 1714564803}, r))


def test_transform_rename_move_drop() -> None:
    """Transforms reshape one side before comparing: v2's ``type.series`` renamed to ``episodes``,
    a field moved, another dropped."""
    r = parse_ruleset(
        "version: 1\ndefaults:\n  transform:\n    primary:\n"
        "      - rename: {path: /list/*/type/series, to: episodes}\n"
        "      - move: {from: /list/*/player/series, to: /list/*/player/episodes}\n"
        "      - drop: /list/*/torrents\n"
    ).defaults
    a = {"list": [{"type": {"series": 12}, "player": {"series": {"first": 1}}, "torrents": []}]}
    b = {"list": [{"type": {"episodes": 12}, "player": {"episodes": {"first": 1}}}]}
    assert [] == diff_documents(a, b, r)
    assert "series" in a["list"][0]["type"]  # the input is not changed


def test_critical_applies_at_and_below() -> None:
    """A difference at or below a critical path is critical; elsewhere it is normal."""
    r = rules("{critical: [/list/*/names]}")
    a = title_list(2)
    b = copy.deepcopy(a)
    b["list"][0]["names"]["ru"] = "x"
    b["list"][1]["code"] = "y"
    diffs = diff_documents(a, b, r)
    assert [("/list/0/names/ru", Severity.CRITICAL), ("/list/1/code", Severity.NORMAL)] == [
        (d.pointer, d.severity) for d in diffs
    ]


def test_first_rule_wins_on_same_path() -> None:
    """Two tolerances reaching the same path: the first declared applies."""
    r = rules("{tolerance: {/r: {abs: 1}, /*: {abs: 0}}}")
    assert [] == diff_documents({"r": 1.0}, {"r": 1.5}, r)


def test_key_matched_reorder_never_reports_positional_noise() -> None:
    """A pure reordering of a key-matched array reports nothing, whatever the order."""
    a = title_list(30)
    r = rules("{unordered: {/list: {key: id}}}")
    rng = random.Random(7)
    for _ in range(20):
        b = copy.deepcopy(a)
        rng.shuffle(b["list"])
        assert [] == diff_documents(a, b, r)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_adding_an_ignore_never_adds_a_difference(data: st.DataObject) -> None:
    """For any pair, the differences under rules plus one more ignore are a subset of those
    without it."""
    a = data.draw(documents)
    b = mutate(data, a)
    token = data.draw(st.sampled_from(["*", "**", "0", "1"]) | keys)
    pattern = (
        "/"
        + data.draw(st.sampled_from(["", "*/", "**/"]))
        + token.replace("~", "~0").replace("/", "~1")
    )
    base = rules("{unordered: [/a]}")
    more = rules(f"{{unordered: [/a], ignore: [{orjson.dumps(pattern).decode()}]}}")
    without = {(d.pointer, d.kind) for d in diff_documents(a, b, base)}
    with_ignore = {(d.pointer, d.kind) for d in diff_documents(a, b, more)}
    assert with_ignore <= without


def test_ignore_whole_body() -> None:
    """Ignoring ``""`` (the whole document) means no body difference at all."""
    assert [] == diff_documents({"a": 1}, [2], rules('{ignore: [""]}'))


def test_equivalent_does_not_apply_to_present_values_of_other_classes() -> None:
    """A class of equivalents only joins its own members; 0 is not false."""
    r = rules("{equivalent: {/v: [[0, '0'], [false, 'no']]}}")
    assert [] == diff_documents({"v": 0}, {"v": "0"}, r)
    assert [("/v", "type")] == where(diff_documents({"v": 0}, {"v": False}, r))


def test_unordered_key_missing_in_some_elements() -> None:
    """Elements without the key field fall back to multiset matching instead of failing."""
    r = rules("{unordered: {/l: {key: id}}}")
    a = {"l": [{"id": 1}, {"x": 1}, 5]}
    b = {"l": [5, {"x": 1}, {"id": 1}]}
    assert [] == diff_documents(a, b, r)
    assert [(DiffKind.EXTRA)] == [d.kind for d in diff_documents(a, {"l": [*b["l"], 6]}, r)]


@settings(max_examples=150, deadline=None)
@given(st.lists(documents, max_size=8), st.randoms(use_true_random=False))
def test_multiset_permutation_is_never_a_difference(items: list[Any], rng: random.Random) -> None:
    """Any permutation of an unordered array, whatever its elements, reports nothing."""
    shuffled = list(items)
    rng.shuffle(shuffled)
    assert [] == diff_documents({"a": items}, {"a": shuffled}, rules("{unordered: [/a]}"))


@settings(max_examples=150, deadline=None)
@given(st.lists(documents, max_size=8), st.randoms(use_true_random=False))
def test_keyed_permutation_is_never_a_difference(bodies: list[Any], rng: random.Random) -> None:
    """Any permutation of elements with distinct keys reports nothing under ``key: id``."""
    items = [{"id": i, "body": body} for i, body in enumerate(bodies)]
    shuffled = list(items)
    rng.shuffle(shuffled)
    r = rules("{unordered: {/list: {key: id}}}")
    assert [] == diff_documents({"list": items}, {"list": shuffled}, r)


def test_deeply_nested_elements_in_unordered_arrays() -> None:
    """Elements nested deeper than the serialiser goes still compare, without an error."""
    deep_a: Any = 1
    deep_b: Any = 2
    for _ in range(600):
        deep_a, deep_b = [deep_a], [deep_b]
    r = rules("{unordered: [/l]}")
    assert [] == diff_documents({"l": [deep_a, 5]}, {"l": [5, deep_a]}, r)
    diffs = diff_documents({"l": [deep_a]}, {"l": [deep_b]}, r)
    assert [("/l/0", "missing"), ("/l/0", "extra")] == where(diffs)
