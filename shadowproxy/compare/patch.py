"""Differences as an RFC 6902 JSON Patch that turns the primary's document into the shadow's.

Operations are ordered so that every pointer is valid when its operation runs: replacements first
(pointers into the primary, nothing has moved yet), then removals deepest-last-index first (so
no removal shifts an index a later one uses), then additions in ascending order of their pointers
into the shadow (so each array insert lands where the shadow has it). Applied to the primary, the
patch yields the shadow except where a rule masked a difference (ignored paths, tolerance, order
of unordered arrays).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shadowproxy.model import Difference, DiffKind
from shadowproxy.rules.pointer import split

_PATCHABLE = (DiffKind.VALUE, DiffKind.TYPE, DiffKind.MISSING, DiffKind.EXTRA)


def _order(pointer: str) -> tuple[tuple[int, int | str], ...]:
    # Array indices compare as numbers ("10" after "9"); object keys as text.
    return tuple((0, int(t)) if t.isdigit() else (1, t) for t in split(pointer))


def to_json_patch(differences: Iterable[Difference]) -> list[dict[str, Any]]:
    """RFC 6902 operations for the body differences (status, header, text and unparseable
    differences have no place in a JSON document and are left out)."""
    replaces: list[dict[str, Any]] = []
    removes: list[str] = []
    adds: list[tuple[str, Any]] = []
    for diff in differences:
        if diff.kind not in _PATCHABLE:
            continue
        if diff.kind is DiffKind.MISSING:
            removes.append(diff.pointer)
        elif diff.kind is DiffKind.EXTRA:
            adds.append((diff.pointer, diff.shadow))
        else:
            replaces.append({"op": "replace", "path": diff.pointer, "value": diff.shadow})
    ops = replaces
    ops += [{"op": "remove", "path": p} for p in sorted(removes, key=_order, reverse=True)]
    ops += [
        {"op": "add", "path": p, "value": v} for p, v in sorted(adds, key=lambda a: _order(a[0]))
    ]
    return ops
