"""The control plane's admin API: read and change the switches at run time.

============================================  ==================================================
``GET    /api/v1/control``                    switches, the values in force, connection state
``PUT    /api/v1/control``                    partial update: ``killed``, ``sample``,
                                              ``shadow_rps`` (``null`` = back to the setting),
                                              ``endpoints`` (name to true, false or null)
``PUT    /api/v1/control/endpoints/{name}``   ``{"mirror": true|false}`` for one endpoint
``DELETE /api/v1/control/endpoints/{name}``   clear that endpoint's override
============================================  ==================================================

Bad input is a 400 with ``{"error": "..."}``; Redis unreachable (Redis mode) is a 503; changes
refused by configuration (see :func:`setup_control_api`) are a 409; in each case nothing changes.
Authentication is the admin app's middleware's business, not this module's.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import orjson
from aiohttp import web

from shadowproxy.control.plane import ControlPlane, ControlUnavailableError
from shadowproxy.control.switches import Change, Switches, SwitchesError, check_endpoint_name

CONTROL_PLANE = web.AppKey("control-plane", ControlPlane)
_REFUSAL = web.AppKey("control-refusal", str)


def setup_control_api(
    app: web.Application, plane: ControlPlane, *, refuse_changes: str = ""
) -> None:
    """Mount the control routes on ``app`` (the admin app) for ``plane``.

    ``refuse_changes``: when not empty, changes answer 409 with this message (reads still work):
    for a process whose local switches would not reach the processes serving traffic.
    """
    app[CONTROL_PLANE] = plane
    app[_REFUSAL] = refuse_changes
    app.router.add_get("/api/v1/control", _get)
    app.router.add_put("/api/v1/control", _put)
    # Any character, slashes too: names are templates like "GET /titles/{id}" (sent URL-encoded).
    app.router.add_put(r"/api/v1/control/endpoints/{endpoint:[\s\S]+}", _put_endpoint)
    app.router.add_delete(r"/api/v1/control/endpoints/{endpoint:[\s\S]+}", _delete_endpoint)


def control_view(plane: ControlPlane, switches: Switches | None = None) -> dict[str, Any]:
    """The JSON body of every control route: the switches and what is in force."""
    state = plane.current if switches is None else switches
    return {
        "switches": state.to_dict(),
        "in_force": {
            "mirroring": not state.killed,
            "sample": plane.sample if state.sample is None else state.sample,
            "shadow_rps": state.rate(plane.shadow_rps),
        },
        "control": plane.health(),
    }


def _error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        raise SwitchesError("expected a JSON object in the request body")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SwitchesError(f"request body is not JSON: {exc}") from None


async def _apply(request: web.Request, change: Change) -> web.Response:
    if refusal := request.app[_REFUSAL]:
        return _error(refusal, 409)
    plane = request.app[CONTROL_PLANE]
    try:
        state = await plane.update(change)
    except ControlUnavailableError as exc:
        return _error(f"control plane unavailable, nothing changed: {exc}", 503)
    except SwitchesError as exc:
        return _error(str(exc))
    return web.json_response(control_view(plane, state))


async def _get(request: web.Request) -> web.Response:
    return web.json_response(control_view(request.app[CONTROL_PLANE]))


async def _put(request: web.Request) -> web.Response:
    try:
        change = Change.parse(await _body(request))
    except SwitchesError as exc:
        return _error(str(exc))
    if change.empty:
        return _error("nothing to change: give killed, sample, shadow_rps or endpoints")
    return await _apply(request, change)


async def _put_endpoint(request: web.Request) -> web.Response:
    try:
        name = check_endpoint_name(request.match_info["endpoint"])
        data = await _body(request)
        if not isinstance(data, dict) or set(data) != {"mirror"}:
            raise SwitchesError('expected {"mirror": true} or {"mirror": false}')
        change = Change(endpoints=MappingProxyType({name: data["mirror"]}))
    except SwitchesError as exc:
        return _error(str(exc))
    return await _apply(request, change)


async def _delete_endpoint(request: web.Request) -> web.Response:
    try:
        name = check_endpoint_name(request.match_info["endpoint"])
    except SwitchesError as exc:
        return _error(str(exc))
    return await _apply(request, Change(endpoints=MappingProxyType({name: None})))
