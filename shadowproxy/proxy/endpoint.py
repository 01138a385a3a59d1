"""Endpoint names: the bounded label every metric, group and summary is keyed by.

A rule's ``name`` wins. Otherwise the path is templated: segments that look like identifiers
(numbers, UUIDs, long hex or base64-ish tokens) become ``{id}``, so ``GET /v3/title/9174`` and
``GET /v3/title/9175`` are one endpoint. Past ``cap`` distinct names, new ones are ``other``: raw
paths from the internet must never become an unbounded label set.
"""

from __future__ import annotations

import re
from collections import OrderedDict

OTHER = "other"

_ID_SEGMENT = re.compile(
    r"""^(?:
        \d+                                                   # 9174
      | [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}   # UUID
      | (?=[^/]*\d)[0-9a-f]{12,}                              # hex digests, object ids
      | (?=[^/]*\d)(?=[^/]*[a-z])[A-Za-z0-9_-]{20,}           # opaque tokens
    )$""",
    re.VERBOSE | re.IGNORECASE,
)
_MAX_SEGMENTS = 12


def template(path: str) -> str:
    """``/v3/title/9174/`` → ``/v3/title/{id}``; past 12 segments the rest becomes ``…``."""
    segments = [s for s in path.split("/") if s]
    cut = len(segments) > _MAX_SEGMENTS
    shown = ["{id}" if _ID_SEGMENT.match(s) else s for s in segments[:_MAX_SEGMENTS]]
    return "/" + "/".join(shown) + ("/…" if cut else "")


class EndpointNamer:
    """Names requests, remembering at most ``cap`` distinct names (then ``other``)."""

    def __init__(self, cap: int = 200, cache_size: int = 4096) -> None:
        self._cap = cap
        self._names: set[str] = set()
        self._cache: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._cache_size = cache_size

    def name(self, method: str, path: str, rule_name: str | None) -> str:
        if rule_name:
            return rule_name
        key = (method, path)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        name = f"{method} {template(path)}"
        if name not in self._names:
            if len(self._names) >= self._cap:
                name = OTHER
            else:
                self._names.add(name)
        self._cache[key] = name
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return name

    @property
    def distinct(self) -> int:
        return len(self._names)
