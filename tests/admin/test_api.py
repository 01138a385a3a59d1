"""The admin JSON API against a real SQLite store filled with realistic comparisons."""

from __future__ import annotations

import base64
import csv
import io
import json
import shlex
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient

from shadowproxy import appkeys
from shadowproxy.admin.api import setup_api
from shadowproxy.admin.app import setup_rules_api
from shadowproxy.admin.openapi import openapi_document
from shadowproxy.control import ControlPlane, setup_control_api
from shadowproxy.store import open_store
from shadowproxy.store.contract import Store
from tests.factories import make_comparison, make_request, make_response
from tests.report.traffic import IMG, JS_URL, SCRIPT, TITLE, Traffic, fill
from tests.schema_check import errors
from tests.store.conftest import start_mongo

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'shadow.db'}")
    await opened.aopen()
    yield opened
    await opened.aclose()


@pytest.fixture
async def traffic(store: Store) -> Traffic:
    return await fill(store)


@pytest.fixture
async def client(aiohttp_client: MakeClient, store: Store, traffic: Traffic) -> Client:
    app = web.Application()
    app[appkeys.STORE] = store
    setup_api(app)
    return await aiohttp_client(app)


async def _get(client: Client, path: str, status: int = 200) -> Any:
    response = await client.get(path)
    assert (status, "application/json") == (response.status, response.content_type)
    return await response.json()


async def test_summary_per_endpoint(client: Client) -> None:
    """Counts, rates and latency per endpoint, sorted by name, with totals."""
    body = await _get(client, "/api/v1/summary?since=24h")
    rows = {
        item["endpoint"]: (
            item["compared"],
            item["mismatches"],
            item["shadow_errors"],
            item["critical"],
        )
        for item in body["endpoints"]
    }
    assert {
        TITLE: (131, 10, 2, 9),
        "schedule": (30, 0, 0, 0),
        "titles.list": (160, 4, 0, 0),
        "titles.search": (200, 0, 0, 0),
    } == rows
    assert (521, 14, 2) == (
        body["totals"]["compared"],
        body["totals"]["mismatches"],
        body["totals"]["shadow_errors"],
    )
    schedule = next(item for item in body["endpoints"] if item["endpoint"] == "schedule")
    assert schedule["latency_ms"]["shadow"]["p95"] > 3 * schedule["latency_ms"]["primary"]["p95"]


async def test_summary_window_and_endpoint_filter(client: Client) -> None:
    """A window before the traffic is empty; ?endpoint= keeps one endpoint."""
    assert [] == (await _get(client, "/api/v1/summary?until=2h"))["endpoints"]
    only = await _get(client, "/api/v1/summary?endpoint=schedule&since=1732600000")
    assert ["schedule"] == [item["endpoint"] for item in only["endpoints"]]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("since=yesterday", "since/until"),
        ("since=1h&until=2h", "after"),
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("verdict=match", "verdict"),
        ("cursor=bogus", "cursor"),
    ],
)
async def test_bad_parameters_are_400_with_a_message(
    client: Client, query: str, message: str
) -> None:
    """Each bad parameter is refused with JSON naming it."""
    body = await _get(client, f"/api/v1/mismatches?{query}", status=400)
    assert message in body["error"]


async def test_mismatches_newest_first_and_paginated(client: Client, traffic: Traffic) -> None:
    """Pages follow one another without overlap; the XSS exchange (newest) comes first."""
    seen: list[str] = []
    cursor = ""
    while True:
        page = await _get(client, f"/api/v1/mismatches?endpoint={TITLE}&limit=4&cursor={cursor}")
        seen += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert traffic.xss_id == seen[0]
    assert 12 == len(seen) == len(set(seen))
    errors = await _get(client, "/api/v1/mismatches?verdict=shadow_error")
    assert {"title-err-0", "title-err-1"} == {item["id"] for item in errors["items"]}
    group = await _get(client, f"/api/v1/mismatches?fingerprint={traffic.critical_fingerprint}")
    assert 9 == len(group["items"])


async def test_mismatch_detail(client: Client) -> None:
    """Bodies decoded (gzip undone), printed lines with pointers, differences and curl."""
    body = await _get(client, "/api/v1/mismatches/title-mm-0")
    primary_body = body["primary"]["body"]
    assert ("gzip", True, "application/json") == (
        primary_body["encoding"],
        primary_body["is_json"],
        json.loads(primary_body["text"]) and "application/json",
    )
    lines = {line["pointer"]: line["text"] for line in primary_body["lines"]}
    assert '"id": 9174,' == lines["/id"]
    shadow_lines = {line["pointer"]: line["text"] for line in body["shadow"]["body"]["lines"]}
    assert '"id": "9174",' == shadow_lines["/id"]
    assert [("/id", "type", "critical"), ("/announce", "missing", "normal")] == [
        (d["pointer"], d["kind"], d["severity"]) for d in body["differences"]
    ]
    argv = shlex.split(body["curl"]["proxy"])
    assert ["curl", "--include"] == argv[:2]
    assert "http://127.0.0.1:8080/v3/title/9174" == argv[-1]


async def test_mismatch_detail_payloads_and_curl_quoting(client: Client, traffic: Traffic) -> None:
    """Payloads come back as data, and the curl command splits back into the exact request."""
    body = await _get(client, f"/api/v1/mismatches/{traffic.xss_id}")
    assert ["x-note", SCRIPT] in body["request"]["headers"]
    assert f"/v3/title/{IMG}?code={JS_URL}&q={SCRIPT}" == body["target"]
    argv = shlex.split(body["curl"]["proxy"])
    assert f"http://127.0.0.1:8080/v3/title/{IMG}?code={JS_URL}&q={SCRIPT}" == argv[-1]
    assert f"x-note: {SCRIPT}" in argv
    assert ["header"] == [d["kind"] for d in body["differences"] if d["pointer"].startswith("/h")]


async def test_binary_body_comes_back_as_base64(store: Store, client: Client) -> None:
    """A body that is not UTF-8 is given as base64, and curl pipes it through printf."""
    raw = b"\x89PNG\r\n\x1a\n\x00\xff'%\\"
    comparison = make_comparison(
        id="binary-1",
        request=make_request(method="POST", body=raw),
        primary=make_response(body=raw, headers=(("content-type", "image/png"),)),
    )
    await store.write([comparison])
    body = await _get(client, "/api/v1/mismatches/binary-1")
    assert (None, raw) == (
        body["primary"]["body"]["text"],
        base64.b64decode(body["primary"]["body"]["base64"]),
    )
    assert body["curl"]["proxy"].startswith("printf ")
    assert "--data-binary @-" in body["curl"]["proxy"]


async def test_unknown_and_malformed_ids(client: Client) -> None:
    """404 for an id that is not there, 400 for one that cannot be an id."""
    assert "no mismatch" in (await _get(client, "/api/v1/mismatches/nope", status=404))["error"]
    await _get(client, "/api/v1/mismatches/%3Cscript%3E", status=400)


async def test_fields_with_share(client: Client) -> None:
    """Differing templates per endpoint, most frequent first, share of comparisons."""
    body = await _get(client, "/api/v1/fields?endpoint=titles.list&since=24h")
    [section] = body["endpoints"]
    assert (
        "titles.list",
        160,
        [
            {"template": "/list/*/genres/*", "kind": "value", "count": 4, "share": 0.025},
            {"template": "/list/*/rating", "kind": "value", "count": 4, "share": 0.025},
        ],
    ) == (section["endpoint"], section["compared"], section["fields"])


async def test_trend_buckets(client: Client, traffic: Traffic) -> None:
    """Per-minute counters re-bucketed: the sum over buckets equals the summary."""
    body = await _get(client, "/api/v1/trend?since=1h&buckets=12")
    totals = {
        series["endpoint"]: sum(point["compared"] for point in series["points"])
        for series in body["endpoints"]
    }
    assert {TITLE: 131, "schedule": 30, "titles.list": 160, "titles.search": 200} == totals
    assert all(len(series["points"]) <= 12 for series in body["endpoints"])
    assert 300.0 == body["bucket_seconds"]


async def test_groups_and_triage(client: Client, traffic: Traffic) -> None:
    """Acknowledge, then mark expected: the snippet is YAML ignoring the group's templates."""
    groups = await _get(client, f"/api/v1/groups?endpoint={TITLE}")
    first = groups["items"][0]
    assert (traffic.critical_fingerprint, 9, "open") == (
        first["fingerprint"],
        first["count"],
        first["state"],
    )
    url = f"/api/v1/groups/{traffic.critical_fingerprint}/triage"
    response = await client.post(url, json={"state": "acknowledged", "note": "tracked in #12"})
    body = await response.json()
    assert (200, "acknowledged", "tracked in #12", None) == (
        response.status,
        body["group"]["state"],
        body["group"]["note"],
        body["snippet"],
    )
    response = await client.post(url, json={"state": "expected"})
    snippet = (await response.json())["snippet"]
    assert {
        "endpoints": [
            {
                "name": TITLE,
                "match": {"method": "GET", "path": "/v3/title/{id}"},
                "ignore": ["/announce", "/id"],
            }
        ]
    } == yaml.safe_load(snippet)
    acknowledged = await _get(client, "/api/v1/groups?state=expected")
    assert [traffic.critical_fingerprint] == [g["fingerprint"] for g in acknowledged["items"]]


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        (b'{"state": "silenced"}', 400, "state"),
        (b"not json", 400, "JSON"),
        (b"[1]", 400, "object"),
        (b'{"state": "open", "note": 5}', 400, "note"),
        (json.dumps({"state": "open", "note": "x" * 20_000}).encode(), 413, "larger"),
    ],
)
async def test_triage_refuses_bad_bodies(
    client: Client, traffic: Traffic, payload: bytes, status: int, message: str
) -> None:
    """Bad or oversized bodies get a JSON error and change nothing."""
    url = f"/api/v1/groups/{traffic.critical_fingerprint}/triage"
    response = await client.post(url, data=payload, headers={"Content-Type": "application/json"})
    assert status == response.status
    assert message in (await response.json())["error"]
    groups = await _get(client, f"/api/v1/groups?endpoint={TITLE}")
    assert "open" == groups["items"][0]["state"]


async def test_triage_unknown_group(client: Client) -> None:
    """404 for a fingerprint with no group."""
    response = await client.post("/api/v1/groups/ffff/triage", json={"state": "acknowledged"})
    assert 404 == response.status


async def test_readiness_defaults_and_overrides(client: Client) -> None:
    """Only titles.search passes by default; loosened criteria let titles.list through."""
    body = await _get(client, "/api/v1/readiness?since=24h")
    verdicts = {item["endpoint"]: item["passed"] for item in body["endpoints"]}
    assert {
        TITLE: False,
        "schedule": False,
        "titles.list": False,
        "titles.search": True,
    } == verdicts
    assert (False, 0.001, 100) == (
        body["passed"],
        body["criteria"]["max_mismatch_rate"],
        body["criteria"]["min_samples"],
    )
    loose = await _get(client, "/api/v1/readiness?since=24h&max_mismatch_rate=3%25")
    assert {"titles.list": True} == {
        item["endpoint"]: item["passed"]
        for item in loose["endpoints"]
        if item["endpoint"] == "titles.list"
    }
    await _get(client, "/api/v1/readiness?max_latency_ratio=-1", status=400)


async def test_report_downloads_carry_the_api_numbers(client: Client) -> None:
    """Each format is an attachment that parses, with the numbers /summary reports."""
    summary = await _get(client, "/api/v1/summary?since=24h")
    expected = {item["endpoint"]: item["compared"] for item in summary["endpoints"]}
    response = await client.get("/api/v1/report?format=json&since=24h")
    assert response.headers["Content-Disposition"].startswith(
        'attachment; filename="shadowproxy-report-'
    )
    document = json.loads(await response.read())
    assert expected == {item["endpoint"]: item["compared"] for item in document["endpoints"]}
    response = await client.get("/api/v1/report?format=csv&since=24h")
    assert response.headers["Content-Disposition"].endswith('.csv"')
    rows = csv.DictReader(io.StringIO((await response.read()).decode()))
    assert expected == {row["endpoint"]: int(row["compared"]) for row in rows}
    for name in ("html", "md", "junit"):
        response = await client.get(f"/api/v1/report?format={name}")
        assert 200 == response.status
    assert 400 == (await client.get("/api/v1/report?format=pdf")).status


async def test_store_failure_is_503(aiohttp_client: MakeClient, tmp_path: Path) -> None:
    """A store that cannot answer gives a JSON 503, not a stack trace."""
    broken = open_store(f"sqlite:///{tmp_path / 'never-opened.db'}")
    app = web.Application()
    app[appkeys.STORE] = broken
    setup_api(app)
    client = await aiohttp_client(app)
    response = await client.get("/api/v1/summary")
    assert 503 == response.status
    assert "store unavailable" in (await response.json())["error"]


def _routes() -> set[tuple[str, str]]:
    app = web.Application()
    setup_api(app)
    setup_control_api(app, ControlPlane())
    setup_rules_api(app)
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }


def test_openapi_describes_every_route() -> None:
    """Every route setup_api adds is in the OpenAPI document, and nothing else is."""
    document = openapi_document()
    described = {(method, path) for path, item in document["paths"].items() for method in item}
    assert _routes() == described
    assert "3.1.0" == document["openapi"]


async def test_openapi_is_served(client: Client) -> None:
    """GET /api/v1/openapi.json answers the document."""
    assert openapi_document() == await _get(client, "/api/v1/openapi.json")


async def test_shadow_error_detail_has_no_shadow_body(store: Store, client: Client) -> None:
    """A shadow timeout shows its error kind instead of a response."""
    body = await _get(client, "/api/v1/mismatches/title-err-0")
    assert ("timeout", None, "shadow_error") == (
        body["shadow"]["error"],
        body["shadow"]["status"],
        body["verdict"],
    )


async def test_same_answers_on_mongodb(aiohttp_client: MakeClient, tmp_path: Path) -> None:
    """The API reads only the store contract: SQLite and MongoDB answer alike for one traffic."""
    server = start_mongo()
    stores = [
        open_store(f"sqlite:///{tmp_path / 'same.db'}"),
        open_store(f"mongodb://127.0.0.1:{server.port}/sp_api_test"),
    ]
    now = time.time()
    answers: list[list[Any]] = []
    try:
        for store in stores:
            await store.aopen()
            await fill(store, now=now)
            app = web.Application()
            app[appkeys.STORE] = store
            setup_api(app)
            client = await aiohttp_client(app)
            since = f"since={int(now) - 86400}&until={int(now) + 60}"
            answers.append(
                [
                    await _get(client, f"/api/v1/summary?{since}"),
                    await _get(client, f"/api/v1/readiness?{since}"),
                    await _get(client, f"/api/v1/fields?{since}"),
                    await _get(client, f"/api/v1/mismatches?{since}&limit=5"),
                    await _get(client, "/api/v1/mismatches/title-xss"),
                    [g["fingerprint"] for g in (await _get(client, "/api/v1/groups"))["items"]],
                ]
            )
    finally:
        for store in stores:
            await store.aclose()
        server.stop()
    sqlite, mongo = answers
    for page in (sqlite[3], mongo[3]):
        page["next_cursor"] = "engine-specific"
    assert sqlite == mongo


def test_openapi_references_resolve() -> None:
    """Every $ref in the OpenAPI document names a schema it defines; every schema is used."""
    document = openapi_document()
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            refs.extend(value for key, value in node.items() if key == "$ref")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    defined = {f"#/components/schemas/{name}" for name in document["components"]["schemas"]}
    assert (set(), set()) == (set(refs) - defined, defined - set(refs))


async def test_every_answer_is_what_the_openapi_document_says(
    store: Store, client: Client, traffic: Traffic
) -> None:
    """Real answers over real traffic against the 200 schema of their route, closed: a field the
    document does not describe (or describes with another type) fails, so the serialisers and
    their description cannot drift apart."""
    document = openapi_document()
    await store.write([make_comparison(id="binary-1", primary=make_response(body=b"\x89PNG\xff"))])
    asked = [
        ("/api/v1/summary", "/api/v1/summary?since=24h"),
        ("/api/v1/trend", "/api/v1/trend?since=24h&buckets=10"),
        ("/api/v1/fields", "/api/v1/fields?since=24h"),
        ("/api/v1/mismatches", "/api/v1/mismatches?since=24h&limit=500"),
        ("/api/v1/groups", "/api/v1/groups"),
        ("/api/v1/readiness", "/api/v1/readiness?since=24h"),
        ("/api/v1/report", "/api/v1/report?since=24h&format=json&examples=20"),
    ]
    page = await _get(client, "/api/v1/mismatches?since=24h&limit=500")
    ids = [item["id"] for item in page["items"]] + ["binary-1"]
    asked += [("/api/v1/mismatches/{id}", f"/api/v1/mismatches/{i}") for i in ids]
    for route, url in asked:
        response = await client.get(url)
        assert 200 == response.status, url
        answer = json.loads(await response.read())
        schema = document["paths"][route]["get"]["responses"]["200"]["content"]["application/json"][
            "schema"
        ]
        assert [] == errors(answer, schema, document, url, closed=True)
    triage = f"/api/v1/groups/{traffic.critical_fingerprint}/triage"
    response = await client.post(triage, json={"state": "expected", "note": "ids become strings"})
    schema = document["paths"]["/api/v1/groups/{fingerprint}/triage"]["post"]["responses"]["200"]
    answer = await response.json()
    assert [] == errors(
        answer, schema["content"]["application/json"]["schema"], document, triage, closed=True
    )
    assert len(ids) >= 10  # matches, mismatches and shadow errors of every endpoint were seen
