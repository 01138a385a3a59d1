"""The path matcher: which rule applies where, for ``*``, ``**`` and literal tokens."""

from __future__ import annotations

import pickle

import pytest

from shadowproxy.rules.paths import (
    GLOBSTAR,
    STAR,
    PathRule,
    Unordered,
    compile_matcher,
    format_pattern,
    parse_pattern,
)

IGNORE = PathRule(ignore=True)
CRITICAL = PathRule(critical=True)


def rule_at(patterns: list[tuple[str, PathRule]], path: list[str]) -> PathRule | None:
    matcher = compile_matcher(tuple((parse_pattern(p), r) for p, r in patterns))
    state = matcher.root
    for key in path:
        state = state.step(key)
    return state.rule


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("/list/*/id", ["list", "3", "id"], True),
        ("/list/*/id", ["list", "id"], False),
        ("/list/*/id", ["list", "3", "x", "id"], False),
        ("**/in_favorites", ["in_favorites"], True),
        ("**/in_favorites", ["list", "0", "in_favorites"], True),
        ("/posters/**/url", ["posters", "url"], True),
        ("/posters/**/url", ["posters", "small", "a", "url"], True),
        ("/posters/**/url", ["x", "posters", "url"], False),
        ("/a~1b/m~0n", ["a/b", "m~n"], True),
        ("", [], True),
        ("/**", ["anything", "at", "all"], True),
    ],
)
def test_pattern_matching(pattern: str, path: list[str], hit: bool) -> None:
    """``*`` is exactly one token, ``**`` any number including none; ``~0``/``~1`` unescape."""
    assert (IGNORE if hit else None) == rule_at([(pattern, IGNORE)], path)


def test_rules_reaching_one_path_merge_in_declaration_order() -> None:
    """Flags add up; for other rules the first declared wins."""
    first, second = Unordered(keys=("id",)), Unordered()
    merged = rule_at(
        [("/l", PathRule(unordered=first)), ("/*", PathRule(unordered=second)), ("/l", CRITICAL)],
        ["l"],
    )
    assert PathRule(critical=True, unordered=first) == merged


def test_numeric_literals_match_array_indices() -> None:
    """A literal index token picks one array element; ``step_index`` finds it."""
    matcher = compile_matcher(((parse_pattern("/list/0/id"), IGNORE),))
    state = matcher.root.step("list")
    assert IGNORE == state.step_index(0).step("id").rule
    assert state.step_index(1).step("id").rule is None


def test_dead_state_when_no_pattern_can_match_below() -> None:
    """Off every pattern's path the state is dead: the walk then needs no lookups."""
    matcher = compile_matcher(((parse_pattern("/list/*/id"), IGNORE),))
    assert matcher.root.step("pagination").dead
    assert not matcher.root.step("list").dead


def test_parse_and_format_round_trip() -> None:
    """Patterns parse into tokens and format back to the same text."""
    assert ("list", STAR, GLOBSTAR, "a/b") == parse_pattern("/list/*/**/a~1b")
    assert "/list/*/**/a~1b" == format_pattern(parse_pattern("/list/*/**/a~1b"))
    with pytest.raises(ValueError, match="starts with"):
        parse_pattern("list/id")


def test_matcher_pickles_as_its_spec() -> None:
    """A matcher pickles small and comes back equal (rebuilt once per process)."""
    spec = ((parse_pattern("**/x"), IGNORE),)
    matcher = compile_matcher(spec)
    matcher.root.step("a").step("x")  # grow some lazily built states
    copy = pickle.loads(pickle.dumps(matcher))  # noqa: S301 - our own bytes
    assert matcher == copy
    assert len(pickle.dumps(matcher)) < 300
