"""The demo catalogue: deterministic, AniLibria-shaped, with a few large titles."""

from __future__ import annotations

import re

import orjson

from shadowproxy.demo.catalogue import build_catalogue

V3_KEYS = [
    "id",
    "code",
    "names",
    "franchises",
    "announce",
    "status",
    "posters",
    "updated",
    "last_change",
    "type",
    "genres",
    "team",
    "season",
    "description",
    "in_favorites",
    "rating",
    "blocked",
    "player",
    "torrents",
]


def test_same_seed_same_bytes() -> None:
    """Two builds with one seed serialise identically; another seed gives other data."""
    first = [orjson.dumps(t.document) for t in build_catalogue(7).titles]
    second = [orjson.dumps(t.document) for t in build_catalogue(7).titles]
    other = [orjson.dumps(t.document) for t in build_catalogue(8).titles]
    assert first == second
    assert first != other


def test_titles_have_the_v3_shape() -> None:
    """About sixty titles, unique ids and codes, every v3 field, Russian names in Cyrillic."""
    catalogue = build_catalogue()
    assert 55 <= len(catalogue.titles) <= 70
    assert len(catalogue.by_id) == len(catalogue.titles) == len(catalogue.by_code)
    for title in catalogue.titles:
        document = title.document
        assert V3_KEYS == list(document)
        assert re.search("[\u0400-\u04ff]", document["names"]["ru"])
        assert {"small", "medium", "original"} == set(document["posters"])
        assert {"voice", "translator", "editing", "decor", "timing"} == set(document["team"])
        assert sorted(document["genres"]) == document["genres"]
        episodes = document["player"]["episodes"]
        assert [str(n) for n in range(episodes["first"], episodes["last"] + 1)] == list(
            document["player"]["list"]
        )
        first = document["player"]["list"]["1"]
        assert {"fhd", "hd", "sd"} == set(first["hls"])
        assert {"opening", "ending"} == set(first["skips"])
        assert document["torrents"]["list"]


def test_two_titles_weigh_100_to_300_kb() -> None:
    """The long runners make responses big enough for gzip and off-loop comparison to matter."""
    sizes = sorted(len(orjson.dumps(t.document)) for t in build_catalogue().titles)
    assert 2 <= sum(100_000 <= size <= 300_000 for size in sizes)
    assert sizes[len(sizes) // 2] < 30_000


def test_stored_facts_that_the_rewrite_renders_differently_are_rare() -> None:
    """Unsorted genre rows, Japanese names, null announces and half-way ratings each touch a few
    titles only, so most responses can match."""
    titles = build_catalogue().titles
    unsorted = [t for t in titles if list(t.genres_stored) != t.document["genres"]]
    japanese = [t for t in titles if t.name_jp]
    no_announce = [t for t in titles if t.document["announce"] is None]
    half_way = [t for t in titles if re.fullmatch(r"\d\.\d[02468]5", t.rating_raw)]
    whole = [t for t in titles if isinstance(t.document["rating"], int)]
    for group in (unsorted, japanese, no_announce, half_way, whole):
        assert 1 <= len(group) <= 6
    for title in unsorted:
        assert sorted(title.genres_stored) == title.document["genres"]
