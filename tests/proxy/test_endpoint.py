"""Endpoint names stay a bounded label set whatever paths arrive."""

from __future__ import annotations

import pytest

from shadowproxy.proxy.endpoint import OTHER, EndpointNamer, template


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v3/title/9174", "/v3/title/{id}"),
        ("/v3/title/list", "/v3/title/list"),
        ("/users/3f2504e0-4f89-11d3-9a0c-0305e82c3301/favorites", "/users/{id}/favorites"),
        ("/torrent/5f8d0d55b54764421b7156c3", "/torrent/{id}"),
        ("/posters/kimetsu-no-yaiba", "/posters/kimetsu-no-yaiba"),
        ("/", "/"),
        ("/a/b/c/d/e/f/g/h/i/j/k/l/m/n", "/a/b/c/d/e/f/g/h/i/j/k/l/…"),
    ],
)
def test_template(path: str, expected: str) -> None:
    assert expected == template(path)


def test_rule_name_wins() -> None:
    assert "titles.list" == EndpointNamer().name("GET", "/v3/title/list", "titles.list")


def test_cardinality_is_capped() -> None:
    """10,000 distinct raw paths never make more than cap names (+ other)."""
    namer = EndpointNamer(cap=50)
    names = {namer.name("GET", f"/page-{i}/x", None) for i in range(10_000)}
    assert 51 == len(names)
    assert OTHER in names
    assert "GET /page-7/x" == namer.name("GET", "/page-7/x", None)
