"""Marking a group expected yields the YAML rule that would silence it."""

from __future__ import annotations

import yaml

from shadowproxy.report.snippet import silencing_rule
from shadowproxy.store.contract import Group


def _group(endpoint: str, *signature: tuple[str, str]) -> Group:
    return Group("abc123", endpoint, tuple(signature), 9, 0.0, 1.0, ("x",))


def test_auto_templated_endpoint_gets_a_match() -> None:
    """An endpoint without a named rule gets method and path from its template."""
    snippet = silencing_rule(
        _group("GET /v3/title/{id}", ("/list/*/genres", "value"), ("/id", "type")),
        rule_exists=False,
    )
    assert {
        "endpoints": [
            {
                "name": "GET /v3/title/{id}",
                "match": {"method": "GET", "path": "/v3/title/{id}"},
                "ignore": ["/id", "/list/*/genres"],
            }
        ]
    } == yaml.safe_load(snippet)
    assert snippet.startswith("# silences group abc123 on GET /v3/title/{id}\n")


def test_named_rule_headers_and_status() -> None:
    """A named rule is referenced by name; headers and status are explained, not ignored."""
    snippet = silencing_rule(
        _group("titles.list", ("/headers/etag", "header"), ("/status", "status"), ("/x", "extra")),
        rule_exists=True,
    )
    assert {"endpoints": [{"name": "titles.list", "ignore": ["/x"]}]} == yaml.safe_load(snippet)
    assert "# stop comparing these headers (leave them out of `headers:`): etag" in snippet
    assert "# a status code difference cannot be ignored by path" in snippet


def test_hostile_names_stay_yaml_data() -> None:
    """An endpoint name or template full of YAML syntax round-trips as plain strings."""
    name = "GET /a: {b: [c]} # d\n- e"
    snippet = silencing_rule(_group(name, ("/k: v", "value")), rule_exists=True)
    loaded = yaml.safe_load(snippet)
    assert {"endpoints": [{"name": name, "ignore": ["/k: v"]}]} == loaded
