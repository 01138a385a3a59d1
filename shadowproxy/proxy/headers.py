"""Which header fields cross the proxy, and the X-Forwarded-* fields it adds.

Hop-by-hop fields (RFC 9110 §7.6.1, plus the legacy ``Keep-Alive`` and ``Proxy-Connection``, and
any field the ``Connection`` header names) describe one connection and are dropped in both
directions. Everything else passes in wire order, repeated names kept.
"""

from __future__ import annotations

from collections.abc import Iterable

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


def end_to_end(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The fields that survive a hop: all but hop-by-hop and those ``Connection`` names."""
    kept: list[tuple[str, str, str]] = []
    named: set[str] = set()
    for key, value in headers:
        lowered = key.lower()
        if lowered in HOP_BY_HOP:
            if lowered == "connection":
                named.update(token.strip().lower() for token in value.split(","))
            continue
        kept.append((lowered, key, value))
    # One pass for the common case; a second only when Connection named extra fields.
    return [(key, value) for lowered, key, value in kept if lowered not in named]


def upstream_request_headers(
    headers: Iterable[tuple[str, str]],
    *,
    client_ip: str | None,
    scheme: str,
    host: str | None,
    keep_length: bool,
) -> CIMultiDict[str]:
    """Headers for the request to a backend: end-to-end fields plus X-Forwarded-*.

    ``X-Forwarded-For`` gets the client's address appended; ``-Proto`` and ``-Host`` keep an
    earlier proxy's value when there is one (that proxy saw the original request), else get ours.
    ``keep_length`` keeps the client's Content-Length, for a body forwarded as it arrives.
    """
    out: CIMultiDict[str] = CIMultiDict()
    for key, value in end_to_end(headers):
        lowered = key.lower()
        # Host and framing belong to the new connection: the client's copy would name the wrong
        # host, or the wrong length once the body is re-framed.
        if lowered == "host" or (lowered == "content-length" and not keep_length):
            continue
        out.add(key, value)
    if client_ip:
        previous = out.popall("X-Forwarded-For", [])
        out["X-Forwarded-For"] = ", ".join([*previous, client_ip])
    out.setdefault("X-Forwarded-Proto", scheme)
    if host:
        out.setdefault("X-Forwarded-Host", host)
    return out


def client_response_headers(headers: Iterable[tuple[str, str]]) -> CIMultiDict[str]:
    """Headers for the client's response: the backend's end-to-end fields, in order."""
    return CIMultiDict(end_to_end(headers))


__all__ = ["HOP_BY_HOP", "client_response_headers", "end_to_end", "upstream_request_headers"]
