"""RFC 6901 JSON Pointers: escaping one reference token, joining and splitting pointers."""

from __future__ import annotations


def escape(token: str) -> str:
    """One reference token as it appears in a pointer (``a/b`` → ``a~1b``, ``m~n`` → ``m~0n``)."""
    if "~" in token or "/" in token:
        return token.replace("~", "~0").replace("/", "~1")
    return token


def unescape(token: str) -> str:
    """The key a reference token names (the inverse of :func:`escape`)."""
    if "~" in token:
        return token.replace("~1", "/").replace("~0", "~")
    return token


def split(pointer: str) -> list[str]:
    """The unescaped keys of ``pointer``; ``""`` (the whole document) is ``[]``.

    Raises ``ValueError`` when the pointer is neither empty nor starts with ``/``.
    """
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ValueError(f"a JSON Pointer starts with '/': {pointer!r}")
    return [unescape(token) for token in pointer[1:].split("/")]


def join(keys: list[str] | tuple[str, ...]) -> str:
    """The pointer naming ``keys`` from the document root."""
    return "".join("/" + escape(key) for key in keys)
