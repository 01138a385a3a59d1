"""Resolving requests to endpoints: methods, path patterns, query and header conditions."""

from __future__ import annotations

from shadowproxy.rules import parse_ruleset

RULES = parse_ruleset(
    "version: 1\n"
    "endpoints:\n"
    "  - name: title.by_id\n"
    "    match: {method: GET, path: /v3/title, query: {id: '*'}}\n"
    "  - name: title.beta\n"
    "    match: {method: GET, path: /v3/title, headers: {X-Beta: '1'}}\n"
    "  - name: title.item\n"
    "    match: {method: [GET, HEAD], path: '/v3/title/{id}'}\n"
    "  - name: static\n"
    "    match: {path: '/static/**'}\n"
    "  - match: {method: [POST, PUT, PATCH, DELETE], path: '/**'}\n"
    "    mirror: false\n"
    "  - match: {method: GET, path: /v3/genres}\n"
)


def name(
    method: str,
    path: str,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> str | None:
    return RULES.resolve(method, path, query or {}, headers or {}).name


def test_first_match_wins_with_conditions() -> None:
    """Query and header conditions select among endpoints on the same path."""
    assert "title.by_id" == name("GET", "/v3/title", {"id": "9000"})
    assert "title.beta" == name("GET", "/v3/title", {}, {"x-beta": "1"})
    assert name("GET", "/v3/title", {"code": "x"}) is None


def test_path_params_and_globstar() -> None:
    """``{id}`` matches one segment, ``**`` any depth, a trailing slash is tolerated."""
    assert "title.item" == name("HEAD", "/v3/title/9000")
    assert "title.item" == name("GET", "/v3/title/9000/")
    assert name("GET", "/v3/title/9000/extra") is None
    assert "static" == name("GET", "/static/css/site.css")
    assert "static" == name("OPTIONS", "/static")


def test_unnamed_wildcard_endpoint_stays_unnamed_but_applies() -> None:
    """A wildcard endpoint without a name leaves naming to the proxy, yet its rules apply."""
    rules = RULES.resolve("POST", "/v3/user/favorites", {}, {})
    assert (None, False) == (rules.name, rules.mirror)


def test_unnamed_literal_endpoint_is_named_after_its_match() -> None:
    """A literal path without a name is named "METHOD /path"."""
    assert "GET /v3/genres" == name("GET", "/v3/genres")
    assert ("title.by_id", "title.beta", "title.item", "static", "GET /v3/genres") == (
        RULES.endpoint_names()
    )


def test_unmatched_request_gets_the_defaults() -> None:
    """No endpoint matching gives the defaults, named None (the proxy auto-templates)."""
    assert RULES.defaults is RULES.resolve("GET", "/v2/getTitle", {}, {})


def test_resolve_returns_shared_objects() -> None:
    """Resolving builds nothing per request: the same rules object comes back every time."""
    assert RULES.resolve("GET", "/v3/title/1", {}, {}) is RULES.resolve(
        "GET", "/v3/title/2", {}, {}
    )
