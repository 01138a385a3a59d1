"""``transform`` rules: reshape one side's document before comparing (rename, move, drop).

For endpoints whose shape changed on purpose (v2 ``type.series`` became v3 ``type.episodes``), a
transform makes the old shape comparable with the new one instead of ignoring the field.
Paths may hold ``*`` (any key or index); a ``move`` target reuses the keys its source's ``*``
matched, in order. Transforms run on the parsed document, before the walk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shadowproxy.rules.paths import STAR, Pattern, format_pattern

_ABSENT: Any = object()


class TransformKind(StrEnum):
    DROP = "drop"
    RENAME = "rename"
    MOVE = "move"


@dataclass(frozen=True, slots=True)
class TransformOp:
    """One step: drop ``path``; rename its last key to ``to``; or move it to ``target``."""

    kind: TransformKind
    path: Pattern
    to: str = ""
    """New key name (rename)."""
    target: Pattern = ()
    """Destination pattern (move); its ``*`` tokens take the keys the source's matched."""

    def describe(self) -> str:
        """A one-line human description, for ``rules check``."""
        if self.kind is TransformKind.DROP:
            return f"drop {format_pattern(self.path)}"
        if self.kind is TransformKind.RENAME:
            return f"rename {format_pattern(self.path)} to {self.to!r}"
        return f"move {format_pattern(self.path)} to {format_pattern(self.target)}"


def _matches(
    node: Any, pattern: Pattern, at: int, captured: tuple[str, ...]
) -> Iterator[tuple[Any, str | int, tuple[str, ...]]]:
    """(parent container, key in it, keys captured by ``*``) for each match of ``pattern[at:]``."""
    token = pattern[at]
    last = at == len(pattern) - 1
    if isinstance(node, dict):
        keys = list(node) if token == STAR else ([token] if token in node else [])
        for key in keys:
            grabbed = (*captured, key) if token == STAR else captured
            if last:
                yield node, key, grabbed
            else:
                yield from _matches(node[key], pattern, at + 1, grabbed)
    elif isinstance(node, list):
        if token == STAR:
            indices = range(len(node))
        elif token.isdigit() and int(token) < len(node):
            indices = range(int(token), int(token) + 1)
        else:
            indices = range(0)
        for index in indices:
            grabbed = (*captured, str(index)) if token == STAR else captured
            if last:
                yield node, index, grabbed
            else:
                yield from _matches(node[index], pattern, at + 1, grabbed)


def _put(document: Any, target: Pattern, captured: tuple[str, ...], value: Any) -> None:
    fill = iter(captured)
    keys = [next(fill, "") if token == STAR else token for token in target]
    node = document
    for key in keys[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(key, {})
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return
    if isinstance(node, dict):
        node[keys[-1]] = value


def apply(document: Any, ops: tuple[TransformOp, ...]) -> Any:
    """``document`` with ``ops`` applied in order (changed in place; the root itself is kept)."""
    for op in ops:
        if not op.path:
            continue
        # Collect first, change after: never mutate a container while iterating it.
        found = list(_matches(document, op.path, 0, ()))
        if op.kind is TransformKind.DROP:
            for parent, key, _ in reversed(found):
                del parent[key]
        elif op.kind is TransformKind.RENAME:
            for parent, key, _ in found:
                if isinstance(parent, dict) and op.to not in parent:
                    parent[op.to] = parent.pop(key)
        else:
            moved = [(parent, key, captured, parent[key]) for parent, key, captured in found]
            for parent, key, _, _ in reversed(moved):
                del parent[key]
            for _, _, captured, value in moved:
                _put(document, op.target, captured, value)
    return document
