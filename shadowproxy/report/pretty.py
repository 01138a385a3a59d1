"""JSON pretty-printed line by line, each line knowing the RFC 6901 pointer of what it shows.

Highlighting a difference then needs no re-parsing and no regex: a line is part of a difference
at pointer ``p`` when its own pointer is ``p`` or lies under it (``p/...``). Numbers print as
Python's ``json`` prints them, so ``24`` and ``24.0`` stay visibly different.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

LINES_MAX = 5000
"""Lines rendered at most per document; a longer one ends with an ellipsis line."""


@dataclass(frozen=True, slots=True)
class Line:
    """One printed line."""

    depth: int
    """Indentation level."""
    text: str
    """The line without indentation: ``"id": 9174,`` or ``]``."""
    pointer: str
    """The pointer of the value this line opens, holds or closes."""


def escape_token(token: str) -> str:
    """One pointer reference token, escaped per RFC 6901 (``~`` → ``~0``, ``/`` → ``~1``)."""
    return token.replace("~", "~0").replace("/", "~1")


def pretty_lines(document: Any, *, limit: int = LINES_MAX) -> list[Line]:
    """Print ``document`` as indented lines; stop after ``limit`` lines with a ``…`` line."""
    lines: list[Line] = []
    for line in _walk(document, "", 0, None, ""):
        if len(lines) >= limit:
            lines.append(Line(0, "… (cut: document too long to show in full)", ""))
            break
        lines.append(line)
    return lines


def covers(difference_pointer: str, line_pointer: str) -> bool:
    """Whether a line at ``line_pointer`` is part of a difference at ``difference_pointer``."""
    if difference_pointer == "":
        return True
    return line_pointer == difference_pointer or line_pointer.startswith(difference_pointer + "/")


def _scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _walk(value: Any, pointer: str, depth: int, key: str | None, comma: str) -> Iterable[Line]:
    prefix = "" if key is None else f"{_scalar(key)}: "
    if isinstance(value, dict) and value:
        yield Line(depth, prefix + "{", pointer)
        items = list(value.items())
        for index, (child_key, child) in enumerate(items):
            yield from _walk(
                child,
                f"{pointer}/{escape_token(str(child_key))}",
                depth + 1,
                str(child_key),
                "," if index < len(items) - 1 else "",
            )
        yield Line(depth, "}" + comma, pointer)
    elif isinstance(value, list) and value:
        yield Line(depth, prefix + "[", pointer)
        for index, child in enumerate(value):
            yield from _walk(
                child, f"{pointer}/{index}", depth + 1, None, "," if index < len(value) - 1 else ""
            )
        yield Line(depth, "]" + comma, pointer)
    else:
        empty = "{}" if isinstance(value, dict) else "[]" if isinstance(value, list) else None
        yield Line(depth, prefix + (empty or _scalar(value)) + comma, pointer)
