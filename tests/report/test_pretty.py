"""Pretty-printed JSON lines know their pointers, so differences can be highlighted exactly."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from shadowproxy.report.pretty import Line, covers, pretty_lines

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


def test_lines_and_pointers() -> None:
    """Each line carries the pointer of the value it shows; keys with / and ~ are escaped."""
    assert [
        Line(0, "{", ""),
        Line(1, '"list": [', "/list"),
        Line(2, "{", "/list/0"),
        Line(3, '"id": "9174",', "/list/0/id"),
        Line(3, '"a/b~c": 24.0', "/list/0/a~1b~0c"),
        Line(2, "}", "/list/0"),
        Line(1, "],", "/list"),
        Line(1, '"": []', "/"),
        Line(0, "}", ""),
    ] == pretty_lines({"list": [{"id": "9174", "a/b~c": 24.0}], "": []})


def test_covers() -> None:
    """A line belongs to a difference at its pointer or below it, not to a sibling prefix."""
    assert [True, True, False, True] == [
        covers("/list/1", "/list/1"),
        covers("/list/1", "/list/1/names/ru"),
        covers("/list/1", "/list/10"),
        covers("", "/anything"),
    ]


def test_long_documents_are_cut() -> None:
    """Past the limit, one ellipsis line says the document was cut."""
    lines = pretty_lines(list(range(100)), limit=10)
    assert (11, "… (cut: document too long to show in full)") == (len(lines), lines[-1].text)


@given(JSON)
def test_lines_reassemble_to_the_document(document: object) -> None:
    """Joined, the lines are valid JSON equal to the input: nothing lost, nothing invented."""
    text = "\n".join(line.text for line in pretty_lines(document, limit=10_000))
    assert document == json.loads(text)
