"""A stored request as a ``curl`` command line, quoted for a POSIX shell.

Everything from traffic is passed through :func:`shlex.quote`, so pasting the command runs curl and
nothing else, whatever the path, headers or body contain. A body that is not UTF-8 text is piped in
with ``printf`` octal escapes rather than pasted raw.
"""

from __future__ import annotations

import shlex

# Set by curl itself, or meaningless once replayed to a different host.
_SKIP_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
    }
)


def curl_command(
    method: str,
    target: str,
    headers: tuple[tuple[str, str], ...],
    body: bytes,
    *,
    base_url: str,
) -> str:
    """``curl`` replaying the request against ``base_url`` (scheme, host, optional path prefix)."""
    url = base_url.rstrip("/") + (target if target.startswith("/") else "/" + target)
    parts = ["curl", "--include"]
    if method != "GET" or body:
        parts += ["--request", shlex.quote(method)]
    for name, value in headers:
        if name.lower() in _SKIP_HEADERS:
            continue
        parts += ["--header", shlex.quote(f"{name}: {value}")]
    prefix = ""
    if body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and "\x00" not in text:
            parts += ["--data-raw", shlex.quote(text)]
        else:
            prefix = f"printf {shlex.quote(_octal(body))} | "
            parts += ["--data-binary", "@-"]
    parts.append(shlex.quote(url))
    return prefix + " ".join(parts)


def _octal(data: bytes) -> str:
    """A ``printf`` format that prints exactly ``data`` (``-`` escaped: never read as an option)."""
    return "".join(
        chr(byte) if 0x20 <= byte < 0x7F and byte not in b"%\\'-" else f"\\{byte:03o}"
        for byte in data
    )
