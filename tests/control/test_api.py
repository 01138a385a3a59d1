"""The control API: read and change the switches; bad input is a 400 and changes nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from shadowproxy.control import ControlPlane, control_openapi, setup_control_api
from shadowproxy.model import SkipReason
from tests.control.helpers import wait_for
from tests.servers import RedisServer

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]


@pytest.fixture
async def plane() -> AsyncIterator[ControlPlane]:
    local = ControlPlane("", sample=80.0, shadow_rps=25.0)
    await local.start()
    yield local
    await local.aclose()


@pytest.fixture
async def client(aiohttp_client: MakeClient, plane: ControlPlane) -> Client:
    app = web.Application()
    setup_control_api(app, plane)
    return await aiohttp_client(app)


async def call(client: Client, method: str, path: str, status: int = 200, **kw: Any) -> Any:
    response = await client.request(method, path, **kw)
    assert (status, "application/json") == (response.status, response.content_type)
    return await response.json()


async def test_get_shows_switches_values_in_force_and_connection(client: Client) -> None:
    """Fresh: no overrides, the settings in force, local mode."""
    body = await call(client, "GET", "/api/v1/control")

    assert {
        "switches": {
            "version": 0,
            "updated_at": 0.0,
            "killed": False,
            "sample": None,
            "shadow_rps": None,
            "endpoints": {},
        },
        "in_force": {"mirroring": True, "sample": 80.0, "shadow_rps": 25.0},
        "control": {
            "mode": "local",
            "connected": True,
            "last_error": None,
            "last_sync": None,
            "fleet_size": 1,
            "version": 0,
        },
    } == body


async def test_put_is_a_partial_update(client: Client, plane: ControlPlane) -> None:
    """Fields not given keep their value; null returns a field to the setting."""
    await call(client, "PUT", "/api/v1/control", json={"killed": True, "sample": 5})
    body = await call(client, "PUT", "/api/v1/control", json={"shadow_rps": 0})

    assert (True, 5.0, 0.0, 2) == (
        body["switches"]["killed"],
        body["switches"]["sample"],
        body["switches"]["shadow_rps"],
        body["switches"]["version"],
    )
    assert {"mirroring": False, "sample": 5.0, "shadow_rps": 0.0} == body["in_force"]
    assert plane.current.killed

    body = await call(client, "PUT", "/api/v1/control", json={"sample": None, "killed": False})
    assert {"mirroring": True, "sample": 80.0, "shadow_rps": 0.0} == body["in_force"]


async def test_endpoint_override_with_a_template_name(client: Client, plane: ControlPlane) -> None:
    """Endpoint names may hold spaces, slashes and braces (URL-encoded in the path)."""
    name = "GET /titles/{id}"
    path = "/api/v1/control/endpoints/" + quote(name, safe="")

    body = await call(client, "PUT", path, json={"mirror": False})
    assert {name: False} == body["switches"]["endpoints"]
    assert SkipReason.RULE_OFF == plane.current.skip_reason(name)

    body = await call(client, "DELETE", path)
    assert {} == body["switches"]["endpoints"]
    assert plane.current.skip_reason(name) is None


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "expected a JSON object"),
        (b"{oops", "not JSON"),
        (b"[1]", "expected a JSON object"),
        (b"{}", "nothing to change"),
        (b'{"kill": true}', "unknown field 'kill'"),
        (b'{"killed": "yes"}', "killed must be true or false"),
        (b'{"sample": 150}', "sample must be a percentage 0-100"),
        (b'{"sample": true}', "sample must be a percentage 0-100"),
        (b'{"shadow_rps": -1}', "shadow_rps must be a number >= 0"),
        (b'{"endpoints": {"a": 1}}', "mirror must be true or false"),
        (b'{"endpoints": []}', "endpoints must be an object"),
    ],
)
async def test_bad_update_is_400_and_changes_nothing(
    client: Client, plane: ControlPlane, body: bytes, fragment: str
) -> None:
    """Each bad body is refused with a message saying what is wrong."""
    answer = await call(client, "PUT", "/api/v1/control", status=400, data=body)

    assert fragment in answer["error"]
    assert 0 == plane.current.version


@pytest.mark.parametrize(
    "body", [b'{"mirror": "off"}', b'{"on": true}', b"{}", b'{"mirror": true, "x": 1}', b"true"]
)
async def test_bad_endpoint_body_is_400(client: Client, plane: ControlPlane, body: bytes) -> None:
    """Only {"mirror": true} or {"mirror": false} switches an endpoint."""
    answer = await call(client, "PUT", "/api/v1/control/endpoints/titles.list", 400, data=body)

    assert "mirror" in answer["error"]
    assert 0 == plane.current.version


async def test_bad_endpoint_name_is_400(client: Client) -> None:
    """A name with control characters or too long is refused."""
    answer = await call(client, "DELETE", "/api/v1/control/endpoints/a%0Ab", 400)
    assert "control characters" in answer["error"]
    answer = await call(client, "DELETE", "/api/v1/control/endpoints/" + "x" * 201, 400)
    assert "longer than 200" in answer["error"]


async def test_redis_down_is_503_and_keeps_the_state(
    aiohttp_client: MakeClient, redis_server: RedisServer
) -> None:
    """In Redis mode with Redis away a change is refused (it could not reach the fleet), the
    last known state stays in force, and GET says the plane is disconnected."""
    plane = ControlPlane(redis_server.url, retry_max=0.2, timeout=1.0)
    await plane.start()
    try:
        app = web.Application()
        setup_control_api(app, plane)
        client = await aiohttp_client(app)
        await call(client, "PUT", "/api/v1/control", json={"killed": True})

        redis_server.stop()
        await wait_for(lambda: not plane.connected)
        answer = await call(client, "PUT", "/api/v1/control", 503, json={"killed": False})
        body = await call(client, "GET", "/api/v1/control")
    finally:
        await plane.aclose()

    assert "nothing changed" in answer["error"]
    assert body["switches"]["killed"]
    assert ("redis", False) == (body["control"]["mode"], body["control"]["connected"])
    assert body["control"]["last_error"]
    assert body["control"]["last_sync"] is not None


def test_openapi_describes_every_control_route() -> None:
    """Every route setup_control_api adds is in control_openapi(), and nothing else; every
    schema it refers to is defined."""
    app = web.Application()
    setup_control_api(app, ControlPlane(""))
    routes = {
        (
            route.method.lower(),
            route.resource.canonical.replace(r"{endpoint:[\s\S]+}", "{endpoint}"),
        )
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    document = control_openapi()
    described = {(method, path) for path, item in document["paths"].items() for method in item}

    assert routes == described
    refs = set(re.findall(r"#/components/schemas/(\w+)", orjson.dumps(document).decode()))
    assert refs <= set(document["schemas"])


async def test_refused_changes_are_409_and_reads_still_work(aiohttp_client: MakeClient) -> None:
    """A supervisor whose local switches would reach no serving process refuses changes."""
    plane = ControlPlane("")
    app = web.Application()
    setup_control_api(app, plane, refuse_changes="use --control redis://... with --workers")
    client = await aiohttp_client(app)

    answer = await call(client, "PUT", "/api/v1/control", 409, json={"killed": True})
    deleted = await call(client, "DELETE", "/api/v1/control/endpoints/a", 409)
    body = await call(client, "GET", "/api/v1/control")

    assert "use --control redis://... with --workers" == answer["error"] == deleted["error"]
    assert (False, 0) == (body["switches"]["killed"], plane.current.version)
