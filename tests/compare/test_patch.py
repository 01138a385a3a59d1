"""Differences to RFC 6902 operations: order and content."""

from __future__ import annotations

from shadowproxy.compare.patch import to_json_patch
from shadowproxy.model import Difference, DiffKind


def test_operations_ordered_replace_remove_add() -> None:
    """Replacements first, removals from the highest index down, additions ascending; status and
    header differences are left out."""
    diffs = [
        Difference("/l/2", "/l/*", DiffKind.MISSING, primary=3),
        Difference("/l/10", "/l/*", DiffKind.MISSING, primary=11),
        Difference("/l/0", "/l/*", DiffKind.VALUE, primary=1, shadow=0),
        Difference("/m/1", "/m/*", DiffKind.EXTRA, shadow="b"),
        Difference("/m/0", "/m/*", DiffKind.EXTRA, shadow="a"),
        Difference("/status", "/status", DiffKind.STATUS, primary=200, shadow=201),
        Difference("/headers/etag", "/headers/etag", DiffKind.HEADER, primary="1", shadow="2"),
    ]
    assert [
        {"op": "replace", "path": "/l/0", "value": 0},
        {"op": "remove", "path": "/l/10"},
        {"op": "remove", "path": "/l/2"},
        {"op": "add", "path": "/m/0", "value": "a"},
        {"op": "add", "path": "/m/1", "value": "b"},
    ] == to_json_patch(diffs)
