"""The admin listener: /metrics, /healthz, the JSON API and the dashboard.

Separate from the traffic listener, loopback by default. Access rules (see :func:`_guard`):

- ``/healthz`` is always open (load balancers and container health checks call it);
- bound beyond loopback, everything else needs ``Authorization: Bearer <token>``;
- state-changing calls need the token when one is configured, and otherwise the header
  ``X-Requested-With: shadowproxy``, which a cross-site form cannot send (no cookies are used,
  so a browser on the same machine cannot be tricked into triaging or reloading).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from shadowproxy import appkeys
from shadowproxy.control import setup_control_api
from shadowproxy.metrics import CONTENT_TYPE, merge_expositions

if TYPE_CHECKING:
    from shadowproxy.server import Runtime


@dataclass(frozen=True, slots=True)
class FleetView:
    """What the supervisor's admin app knows of its serving processes (``--workers N``)."""

    peers: Callable[[], list[str]]
    """Private admin URLs of the live serving processes."""
    reload: Callable[[], object]
    """Ask every serving process to reload its rules."""
    expected: int
    """How many serving processes there should be."""


RUNTIME: web.AppKey[Runtime] = web.AppKey("admin-runtime")
FLEET: web.AppKey[FleetView] = web.AppKey("admin-fleet")
PEER_SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("admin-peer-session")
ADMIN_BODY_MAX = 64 * 1024
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def create_admin_app(runtime: Runtime, *, fleet: FleetView | None = None) -> web.Application:
    settings = runtime.settings
    app = web.Application(
        middlewares=[_guard(settings.admin_token, settings.admin_listen.is_loopback)],
        client_max_size=ADMIN_BODY_MAX,
    )
    app[RUNTIME] = runtime
    app[appkeys.SETTINGS] = settings
    app[appkeys.STORE] = runtime.store
    app[appkeys.RULES] = runtime.rules
    app[appkeys.PIPELINE] = runtime.pipeline
    app[appkeys.WRITER] = runtime.writer
    if fleet is not None:
        app[FLEET] = fleet
        app.cleanup_ctx.append(_peer_session)
        app.router.add_get("/metrics", _fleet_metrics)
        app.router.add_get("/healthz", _fleet_healthz)
    else:
        app.router.add_get("/metrics", _metrics)
        app.router.add_get("/healthz", _healthz)
    setup_rules_api(app)

    from shadowproxy.admin.api import setup_api
    from shadowproxy.admin.dashboard import setup_dashboard

    setup_api(app)
    setup_dashboard(app)
    if runtime.control is not None:
        # In a supervisor, switches kept in this process would reach no serving process.
        refuse = (
            "with --workers, runtime switches need --control redis://…"
            if fleet is not None and not settings.control
            else ""
        )
        setup_control_api(app, runtime.control, refuse_changes=refuse)
    return app


def _guard(token: str, loopback: bool) -> Middleware:
    expected = f"Bearer {token}".encode() if token else b""

    def authorised(request: web.Request) -> bool:
        given = request.headers.get("Authorization", "").encode()
        # Constant-time: the comparison must not tell an attacker how much of the token matched.
        return bool(expected) and hmac.compare_digest(given, expected)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/healthz":
            return await handler(request)
        changing = request.method not in _SAFE
        if (not loopback or (changing and token)) and not authorised(request):
            return web.json_response(
                {"error": "missing or wrong admin token (Authorization: Bearer ...)"},
                status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        if changing and not token and request.headers.get("X-Requested-With") != "shadowproxy":
            return web.json_response(
                {"error": "state-changing calls need the header X-Requested-With: shadowproxy"},
                status=403,
            )
        return await handler(request)

    return guard


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[RUNTIME].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def _healthz(request: web.Request) -> web.Response:
    """200 while serving; ``status`` says ``degraded`` when the store or the rules need a look."""
    runtime = request.app[RUNTIME]
    writer = runtime.writer.stats()
    rules = runtime.rules
    degraded = not writer.store_up or rules.last_error is not None
    extra: dict[str, object] = {}
    if runtime.control is not None:
        degraded = degraded or runtime.control.degraded
        extra["control"] = runtime.control.health()
    if runtime.publisher is not None:
        queue = runtime.publisher.stats()
        degraded = degraded or not queue.connected
        extra["queue"] = {
            "connected": queue.connected,
            "buffered": queue.buffered,
            "dropped": queue.dropped,
            "trimmed": queue.trimmed,
            "last_error": queue.last_error,
        }
    return web.json_response(
        {
            **extra,
            "status": "degraded" if degraded else "ok",
            "store": {
                "engine": runtime.store.engine,
                "up": writer.store_up,
                "buffered": writer.buffered,
                "spooled": writer.spooled_records,
                "dropped": writer.dropped,
                "last_error": writer.last_error or None,
            },
            "rules": {"version": rules.current.version, "last_error": rules.last_error},
            "queue_depth": runtime.pipeline.depth,
        }
    )


def setup_rules_api(app: web.Application) -> None:
    """``POST /api/v1/rules/reload``."""
    app.router.add_post("/api/v1/rules/reload", _reload_rules)


async def _peer_session(app: web.Application) -> AsyncIterator[None]:
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        app[PEER_SESSION] = session
        yield


async def _from_peers(request: web.Request, path: str) -> list[bytes | None]:
    session = request.app[PEER_SESSION]

    async def one(url: str) -> bytes | None:
        try:
            async with session.get(url + path) as response:
                return await response.read()
        except (aiohttp.ClientError, TimeoutError):
            return None

    return list(await asyncio.gather(*(one(url) for url in request.app[FLEET].peers())))


async def _fleet_metrics(request: web.Request) -> web.Response:
    """The sum of every serving process's metrics (the supervisor serves no traffic itself)."""
    texts = [t.decode() for t in await _from_peers(request, "/metrics") if t is not None]
    body = merge_expositions(texts)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def _fleet_healthz(request: web.Request) -> web.Response:
    fleet = request.app[FLEET]
    answers = [orjson.loads(a) if a else None for a in await _from_peers(request, "/healthz")]
    workers = [a for a in answers if a is not None]
    healthy = len(workers) == fleet.expected and all(w["status"] == "ok" for w in workers)
    return web.json_response(
        {
            "status": "ok" if healthy else "degraded",
            "workers": {"expected": fleet.expected, "answering": len(workers)},
            "processes": workers,
        }
    )


async def _reload_rules(request: web.Request) -> web.Response:
    rules = request.app[RUNTIME].rules
    ok = rules.reload()
    if FLEET in request.app:
        request.app[FLEET].reload()
    return web.json_response(
        {"ok": ok, "version": rules.current.version, "error": rules.last_error},
        status=200 if ok else 422,
    )
