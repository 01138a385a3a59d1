"""The demo backends, run as real servers: every route answers, and the rewrite differs from the
legacy service exactly where the differences were planted (plus the volatile fields)."""

from __future__ import annotations

import gzip
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from shadowproxy.demo.backends import FAILING_PAGE, SCHEDULE_DELAY, legacy_app, rewrite_app
from shadowproxy.demo.catalogue import Catalogue, Title, build_catalogue

Diff = set[tuple[str, str]]


def differences(primary: Any, shadow: Any, pointer: str = "") -> Diff:
    """(pointer, kind) for every place the two JSON values differ; kinds as the proxy names them."""
    if type(primary) is not type(shadow):
        return {(pointer, "type")}
    if isinstance(primary, dict):
        found: Diff = set()
        for key in primary.keys() | shadow.keys():
            where = f"{pointer}/{key}"
            if key not in shadow:
                found.add((where, "missing"))
            elif key not in primary:
                found.add((where, "extra"))
            else:
                found |= differences(primary[key], shadow[key], where)
        return found
    if isinstance(primary, list):
        if len(primary) != len(shadow):
            return {(pointer, "length")}
        found = set()
        for index, (a, b) in enumerate(zip(primary, shadow, strict=True)):
            found |= differences(a, b, f"{pointer}/{index}")
        return found
    return set() if primary == shadow else {(pointer, "value")}


def expected_title_differences(title: Title) -> Diff:
    """What the rewrite should get wrong (or legitimately differently) about one title."""
    expected: Diff = set()
    document = title.document
    for index, (a, b) in enumerate(zip(document["genres"], title.genres_stored, strict=True)):
        if a != b:
            expected.add((f"/genres/{index}", "value"))
    if title.name_jp:
        expected.add(("/names/jp", "extra"))
    if document["announce"] is None:
        expected.add(("/announce", "missing"))
    half_up = Decimal(title.rating_raw).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    half_even = Decimal(title.rating_raw).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    if isinstance(document["rating"], int):
        expected.add(("/rating", "type"))
    elif half_up != half_even:
        expected.add(("/rating", "value"))
    if title.id % 3 == 0:
        expected.add(("/updated", "value"))
    if title.id % 5 != 2:
        expected.add(("/in_favorites", "value"))
    return expected


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    raw: bytes
    """The body as sent on the wire (not decompressed)."""
    elapsed: float

    def json(self) -> Any:
        body = (
            gzip.decompress(self.raw)
            if self.headers.get("Content-Encoding") == "gzip"
            else self.raw
        )
        return orjson.loads(body)


Fetch = Callable[..., Any]


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return build_catalogue()


@pytest.fixture
async def services(
    catalogue: Catalogue, aiohttp_server: Callable[[web.Application], Any]
) -> tuple[str, str]:
    """Both services on free ports (pytest-aiohttp stops them), sharing one catalogue."""
    legacy: TestServer = await aiohttp_server(legacy_app(catalogue))
    rewrite: TestServer = await aiohttp_server(rewrite_app(catalogue))
    return str(legacy.make_url("")), str(rewrite.make_url(""))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as client:
        yield client


async def fetch(session: aiohttp.ClientSession, url: str, gzip_ok: bool = True) -> Answer:
    headers = {"Accept-Encoding": "gzip, deflate" if gzip_ok else "identity"}
    started = time.perf_counter()
    async with session.get(url, headers=headers) as response:
        raw = await response.read()
        return Answer(response.status, dict(response.headers), raw, time.perf_counter() - started)


async def both(
    session: aiohttp.ClientSession, services: tuple[str, str], target: str
) -> tuple[Answer, Answer]:
    legacy_url, rewrite_url = services
    return await fetch(session, legacy_url + target), await fetch(session, rewrite_url + target)


ROUTES = [
    "/v3/title?id={id}",
    "/v3/title?code={code}",
    "/v3/title/list?id_list={id},{other}",
    "/v3/title/list?code_list={code}",
    "/v3/title/search?search=%D0%B0%D1%82%D0%B0%D0%BA%D0%B0",
    "/v3/title/schedule?days=0,1,2,3,4,5,6",
    "/v3/title/updates?limit=5",
    "/v3/title/updates?page=1&items_per_page=4",
    "/v3/genres",
    "/v3/years",
]


@pytest.mark.parametrize("route", ROUTES)
async def test_every_route_answers_json_on_both(
    route: str, catalogue: Catalogue, services: tuple[str, str], session: aiohttp.ClientSession
) -> None:
    """Each v3 route answers 200 with UTF-8 JSON on both services; only the legacy one says
    it is Express."""
    first, second = catalogue.titles[0], catalogue.titles[1]
    target = route.format(id=first.id, other=second.id, code=first.code)
    legacy, rewrite = await both(session, services, target)
    assert (200, 200) == (legacy.status, rewrite.status)
    assert "application/json; charset=utf-8" == legacy.headers["Content-Type"]
    assert "application/json; charset=utf-8" == rewrite.headers["Content-Type"]
    assert "Express" == legacy.headers["X-Powered-By"]
    assert "X-Powered-By" not in rewrite.headers
    assert legacy.json()
    assert rewrite.json()


async def test_titles_differ_exactly_where_planted(
    catalogue: Catalogue, services: tuple[str, str], session: aiohttp.ClientSession
) -> None:
    """For every title, the rewrite's document differs from the legacy one in the planted places
    (genres order, names.jp, announce, rating) and the volatile ones, and nowhere else; most
    titles differ only in volatile fields."""
    only_volatile = 0
    for title in catalogue.titles:
        legacy, rewrite = await both(session, services, f"/v3/title?id={title.id}")
        assert legacy.json() == dict(title.document)
        found = differences(legacy.json(), rewrite.json())
        assert expected_title_differences(title) == found, title.code
        only_volatile += found <= {("/updated", "value"), ("/in_favorites", "value")}
    assert 0.6 <= only_volatile / len(catalogue.titles) <= 0.9


async def test_search_sends_ids_as_strings(
    catalogue: Catalogue, services: tuple[str, str], session: aiohttp.ClientSession
) -> None:
    """Search results carry the id as a string in the rewrite, a number in the legacy service."""
    legacy, rewrite = await both(
        session, services, "/v3/title/search?search=%D0%B0&limit=10&filter=id,names"
    )
    legacy_ids = [item["id"] for item in legacy.json()["list"]]
    rewrite_ids = [item["id"] for item in rewrite.json()["list"]]
    assert 5 <= len(legacy_ids)
    assert all(isinstance(i, int) for i in legacy_ids)
    assert [str(i) for i in legacy_ids] == rewrite_ids
    assert legacy.json()["pagination"]["total_items"] == rewrite.json()["pagination"]["total_items"]


async def test_schedule_is_slow_on_the_rewrite(
    services: tuple[str, str], session: aiohttp.ClientSession
) -> None:
    """The rewrite's schedule takes at least the planted delay; the days and titles agree."""
    legacy, rewrite = await both(session, services, "/v3/title/schedule?days=2,5&filter=id,code")
    assert rewrite.elapsed >= SCHEDULE_DELAY
    assert legacy.json() == rewrite.json()
    assert [2, 5] == [day["day"] for day in legacy.json()]


async def test_updates_fail_on_late_pages_in_the_rewrite(
    services: tuple[str, str], session: aiohttp.ClientSession
) -> None:
    """Early update pages agree apart from took_ms; from the failing page on the rewrite
    answers a bare 500 while the legacy service answers the page."""
    target = "/v3/title/updates?page={}&items_per_page=4&filter=id,code"
    legacy, rewrite = await both(session, services, target.format(FAILING_PAGE - 1))
    assert {("/pagination/took_ms", "type")} >= differences(legacy.json(), rewrite.json())
    assert 4 == len(legacy.json()["list"])
    legacy, rewrite = await both(session, services, target.format(FAILING_PAGE))
    assert (200, 500) == (legacy.status, rewrite.status)
    assert rewrite.headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("target", "status", "message"),
    [
        ("/v3/title?code=test", 404, 'Title "test" not found!'),
        ("/v3/title?id=99999999", 404, 'Title "99999999" not found!'),
        ("/v3/title?foo=bar", 412, "Unknown parameters: foo"),
        ("/v3/title/list", 412, "Required parameter missing: id_list or code_list"),
    ],
)
async def test_errors_come_anilibria_style(
    target: str,
    status: int,
    message: str,
    services: tuple[str, str],
    session: aiohttp.ClientSession,
) -> None:
    """Errors repeat the HTTP status in an {"error": {code, message}} body, on both services."""
    legacy, rewrite = await both(session, services, target)
    expected = {"error": {"code": status, "message": message}}
    assert (status, status) == (legacy.status, rewrite.status)
    assert expected == legacy.json() == rewrite.json()


async def test_filter_and_remove_shape_the_title(
    catalogue: Catalogue, services: tuple[str, str], session: aiohttp.ClientSession
) -> None:
    """filter keeps only the named paths (dotted, with list indices and [*]); remove drops them."""
    title = catalogue.titles[0]
    legacy_url = services[0]
    target = f"/v3/title?id={title.id}&filter=id,names.ru,player.list.1,torrents.list[*].torrent_id"
    picked = (await fetch(session, legacy_url + target)).json()
    torrents = [{"torrent_id": t["torrent_id"]} for t in title.document["torrents"]["list"]]
    assert {
        "id": title.id,
        "names": {"ru": title.document["names"]["ru"]},
        "player": {"list": {"1": title.document["player"]["list"]["1"]}},
        "torrents": {"list": torrents},
    } == picked
    dropped = (
        await fetch(session, f"{legacy_url}/v3/title?id={title.id}&remove=player,torrents,names.en")
    ).json()
    assert "player" not in dropped
    assert "torrents" not in dropped
    assert {"ru", "alternative"} == set(dropped["names"])


async def test_legacy_gzips_large_bodies_rewrite_never_compresses(
    catalogue: Catalogue, services: tuple[str, str], session: aiohttp.ClientSession
) -> None:
    """A 100-300 KB title goes out gzip-encoded from the legacy service when the client accepts
    it, identity otherwise; the rewrite sends it plain, ASCII-escaped, and both decode to data
    that differ only where planned."""
    big = catalogue.by_code["one-piece"]
    legacy, rewrite = await both(session, services, f"/v3/title?id={big.id}")
    assert "gzip" == legacy.headers["Content-Encoding"]
    assert "Content-Encoding" not in rewrite.headers
    assert 100_000 <= len(gzip.decompress(legacy.raw)) <= 300_000
    assert len(legacy.raw) < len(rewrite.raw) // 3
    assert rewrite.raw.isascii()
    assert "Ван-Пис".encode() in gzip.decompress(legacy.raw)
    plain = await fetch(session, f"{services[0]}/v3/title?id={big.id}", gzip_ok=False)
    assert "Content-Encoding" not in plain.headers
    assert gzip.decompress(legacy.raw) == plain.raw
    assert expected_title_differences(big) == differences(legacy.json(), rewrite.json())


async def test_whole_ratings_print_the_javascript_way(
    catalogue: Catalogue, services: tuple[str, str], session: aiohttp.ClientSession
) -> None:
    """A whole-number rating is `8` from the legacy service and `8.0` from the rewrite."""
    title = next(t for t in catalogue.titles if isinstance(t.document["rating"], int))
    legacy, rewrite = await both(session, services, f"/v3/title?id={title.id}&filter=id,rating")
    assert f'{{"id":{title.id},"rating":{title.document["rating"]}}}'.encode() == legacy.raw
    assert f'{{"id": {title.id}, "rating": {title.document["rating"]}.0}}'.encode() == rewrite.raw


SESSION = "0123456789abcdef0123456789abcdef"


async def test_a_session_sees_its_own_fixed_user_and_favourites(
    services: tuple[str, str], session: aiohttp.ClientSession
) -> None:
    """A session token names one user with fixed favourites on both services; writing a favourite
    answers success and changes nothing either service later reads."""
    legacy_url = services[0]
    user_legacy, user_rewrite = await both(session, services, f"/v3/user?session={SESSION}")
    assert user_legacy.json() == user_rewrite.json()
    assert {"login", "nickname", "email"} <= set(user_legacy.json())
    target = f"/v3/user/favorites?session={SESSION}&filter=id"
    before = (await fetch(session, legacy_url + target)).json()
    async with session.put(
        f"{legacy_url}/v3/user/favorites?session={SESSION}&title_id={before['list'][0]['id']}"
    ) as put:
        assert (200, {"success": True}) == (put.status, await put.json())
    after_legacy, after_rewrite = await both(session, services, target)
    assert before == after_legacy.json()
    assert {("/pagination/took_ms", "type")} >= differences(
        after_legacy.json(), after_rewrite.json()
    )
    other = (await fetch(session, legacy_url + target.replace("0123", "fedc"))).json()
    assert before["list"] != other["list"]


@pytest.mark.parametrize(
    ("method", "target", "status", "message"),
    [
        ("GET", "/v3/user?session=nope", 401, "Invalid session"),
        ("GET", "/v3/user/favorites", 401, "Invalid session"),
        (
            "PUT",
            f"/v3/user/favorites?session={SESSION}",
            412,
            "Required parameter missing: title_id",
        ),
        ("DELETE", f"/v3/user/favorites?session={SESSION}&title_id=1", 404, 'Title "1" not found!'),
    ],
)
async def test_user_errors(
    method: str,
    target: str,
    status: int,
    message: str,
    services: tuple[str, str],
    session: aiohttp.ClientSession,
) -> None:
    """A bad session, a missing or unknown title_id: AniLibria-style errors."""
    async with session.request(method, services[0] + target) as response:
        assert status == response.status
        assert {"error": {"code": status, "message": message}} == await response.json()
