"""The words ``rules check`` uses for each rule."""

from __future__ import annotations

from shadowproxy.rules import parse_ruleset
from shadowproxy.rules.explanation import explain, warnings


def test_every_rule_is_described() -> None:
    """Each kind of rule and setting appears in the explanation in plain words."""
    ruleset = parse_ruleset(
        "version: 1\n"
        "defaults: {ignore: ['**/took_ms']}\n"
        "endpoints:\n"
        "  - name: titles\n"
        "    match: {method: GET, path: /v3/title, query: {id: '*', debug: null}}\n"
        "    unordered: {/list: {key: [id, lang]}, /tags: {}}\n"
        "    tolerance: {/rating: {abs: 0.01, rel: 0.02}}\n"
        "    coerce: {/id: number}\n"
        "    equivalent: {/alt: [null, '', missing]}\n"
        "    normalize: {/url: {regex: '^https?://[^/]+', replace: '', casefold: true}}\n"
        "    timestamps: {/updated: {tolerance_s: 2}}\n"
        "    critical: [/id]\n"
        "    status: {equivalent: [[200, 201]]}\n"
        "    numbers: {int_float_equal: false}\n"
        "    transform: {shadow: [{rename: {path: /type/episodes, to: series}}]}\n"
        "    mirror: true\n"
        "    sample: 25\n"
        "    redact: [token]\n"
    )
    text = "\n".join(explain(ruleset))
    for expected in (
        "1. titles: GET /v3/title ?id=*&debug=(absent)",
        "mirror: yes; sample: 25%",
        "24 and 24.0 differ",
        "status codes 200, 201 count as equal",
        "before comparing, on the shadow: rename /type/episodes to 'series'",
        "/list: unordered, matched by key id+lang",
        "/tags: a multiset",
        "/rating: numbers within ±0.01 or ±2%",
        "/id: both sides read as number",
        "/alt: equal within {'', missing, null}",
        "/url: strings normalised: replace regex '^https?://[^/]+' with '', case fold",
        "/updated: instants within 2 s",
        "/id: critical",
        "and the defaults' 1 path rule (below)",
        "redacted before storing: token",
        "/**/took_ms: ignored",
    ):
        assert expected in text


def test_shadowed_endpoints_are_warned_about() -> None:
    """An endpoint that an earlier catch-all or identical match always takes is flagged."""
    ruleset = parse_ruleset(
        "version: 1\n"
        "endpoints:\n"
        "  - {name: all-writes, match: {method: [POST, PUT], path: '/v3/**'}}\n"
        "  - {name: favorites, match: {method: PUT, path: /v3/user/favorites}}\n"
        "  - {name: by-id, match: {method: GET, path: /v3/title, query: {id: '*'}}}\n"
        "  - {name: title, match: {method: GET, path: /v3/title}}\n"
        "  - {name: title-again, match: {method: GET, path: /v3/title}}\n"
    )
    assert [
        "endpoint 2 (favorites, line 4) never matches: endpoint 1 (all-writes, line 3) takes "
        "all its requests first",
        "endpoint 5 (title-again, line 7) never matches: endpoint 4 (title, line 6) takes "
        "all its requests first",
    ] == warnings(ruleset)
    assert "warning: endpoint 2 (favorites" in "\n".join(explain(ruleset))
