"""Which header fields cross the proxy, and the X-Forwarded-* fields it adds.

Hop-by-hop fields (RFC 9110 §7.6.1, plus the legacy ``Keep-Alive`` and ``Proxy-Connection``, and
any field the ``Connection`` header names) describe one connection and are dropped in both
directions. Everything else passes in wire order, repeated names kept.
"""

from __future__ import annotations

from collections.abc import Collection

from multidict import CIMultiDict

HOP_BY_HOP = frozenset(
    {
        "connection",
        "proxy-connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
    }
)


# Host belongs to the new connection: the client's copy would name the proxy, not the backend.
_NOT_UPSTREAM = HOP_BY_HOP | {"host"}


def end_to_end(
    fields: Collection[tuple[str, str]], dropped: frozenset[str] = HOP_BY_HOP
) -> list[tuple[str, str]]:
    """The fields that survive a hop, in wire order: all but ``dropped`` (lower-case names) and
    those ``Connection`` names."""
    kept = [(key, value) for key, value in fields if key.lower() not in dropped]
    if len(kept) < len(fields):  # something was dropped: maybe a Connection naming others
        named = {
            token.strip().lower()
            for key, value in fields
            if key.lower() == "connection"
            for token in value.split(",")
        }
        if named:
            kept = [(key, value) for key, value in kept if key.lower() not in named]
    return kept


def upstream_request_headers(
    fields: Collection[tuple[str, str]], *, client_ip: str | None, scheme: str, host: str | None
) -> CIMultiDict[str]:
    """Headers for the request to a backend: the client's end-to-end ``fields`` plus
    X-Forwarded-*.

    ``X-Forwarded-For`` gets the client's address appended; ``-Proto`` and ``-Host`` keep an
    earlier proxy's value when there is one (that proxy saw the original request), else get ours.
    The client's Content-Length stays, for a body forwarded as it arrives.
    """
    out = CIMultiDict(end_to_end(fields, _NOT_UPSTREAM))
    if client_ip:
        previous = out.popall("X-Forwarded-For", [])
        out["X-Forwarded-For"] = ", ".join([*previous, client_ip])
    out.setdefault("X-Forwarded-Proto", scheme)
    if host:
        out.setdefault("X-Forwarded-Host", host)
    return out


__all__ = ["HOP_BY_HOP", "end_to_end", "upstream_request_headers"]
