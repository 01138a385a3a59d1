"""The dashboard: one HTML page and its static files, served by the admin app.

The page is a shell; ``static/app.js`` renders everything from ``/api/v1``. Files are read once at
set-up from the package (no path from the request ever reaches the file system), and every
response carries a strict Content-Security-Policy: scripts, styles and images from this origin
only, no inline script, no framing, no plugins.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).with_name("static")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_STATIC: web.AppKey[dict[str, StaticFile]] = web.AppKey("dashboard-static")


@dataclass(frozen=True, slots=True)
class StaticFile:
    """One file of the dashboard, held in memory."""

    body: bytes
    media_type: str


def setup_dashboard(app: web.Application) -> None:
    """Add ``GET /`` (the dashboard) and ``GET /static/{name}`` to the admin app."""
    app[_STATIC] = {
        path.name: StaticFile(path.read_bytes(), _MEDIA_TYPES[path.suffix])
        for path in sorted(STATIC_DIR.iterdir())
        if path.suffix in _MEDIA_TYPES
    }
    app.router.add_get("/", _index)
    app.router.add_get("/static/{name}", _static)


def _respond(item: StaticFile) -> web.Response:
    return web.Response(body=item.body, headers={**_HEADERS, "Content-Type": item.media_type})


async def _index(request: web.Request) -> web.Response:
    return _respond(request.app[_STATIC]["index.html"])


async def _static(request: web.Request) -> web.Response:
    item = request.app[_STATIC].get(request.match_info["name"])
    if item is None:
        raise web.HTTPNotFound(text="no such file", headers=_HEADERS)
    return _respond(item)
