"""Opaque pagination cursors: a position in a sorted listing, encoded so nobody depends on it.

A cursor is URL-safe base64 of a small JSON array (the sort key of the last item returned, and a
tag naming the listing). A cursor from another listing or a mangled one raises
:class:`CursorError`, which the API turns into a 400.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from shadowproxy.store.contract import StoreError


class CursorError(StoreError, ValueError):
    """The cursor string was not produced by this listing."""


def encode_cursor(listing: str, *key: Any) -> str:
    """A cursor that resumes ``listing`` after the item whose sort key is ``key``."""
    raw = orjson.dumps([listing, *key])
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(listing: str, cursor: str) -> list[Any]:
    """The sort key stored in ``cursor``; raise :class:`CursorError` when it is not ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeEncodeError, orjson.JSONDecodeError):
        raise CursorError(f"invalid cursor {cursor[:40]!r}") from None
    if not isinstance(value, list) or not value or value[0] != listing:
        raise CursorError(f"invalid cursor {cursor[:40]!r} for {listing}")
    return value[1:]
