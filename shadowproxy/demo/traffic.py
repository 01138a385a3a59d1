"""The demo's traffic driver: a realistic mix of AniLibria v3 requests, sent through one session.

Mostly titles by id and small lists, like a catalogue front end; some searches with Cyrillic
queries (percent-encoded on the wire), schedule and updates pages, the genre and year lists, a
signed-in user's favourites (with a ``session`` token in the query, a secret to redact, and a few
PUT and DELETE writes, which the proxy forwards but does not mirror), and a few requests that end
in 404 or 412. The mix is drawn from a seeded ``random.Random``, so two runs
with the same seed send the same requests in the same order (their interleaving under concurrency
aside).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp

from shadowproxy.demo.catalogue import Catalogue, build_catalogue

_SEARCHES = (
    "атака",
    "Клинок",
    "битва",
    "Летнее время",
    "ван",
    "истории",
    "монолог",
    "Фрирен",
    "семья",
    "cудьба апокреф",  # a Latin "c" among Cyrillic letters, as in the AniLibria docs: no results
    "Steins",
    "one piece",
    "кайдзю",
    "алхимик",
)
_SEARCH_GENRES = ("Комедия", "Драма", "Фэнтези", "Экшен", "Сёнен", "Романтика")
_FILTERS = (
    "id,names,genres",
    "posters,type,status,player.list.1",
    "id,code,names.ru,season",
    "id,torrents.list[*].torrent_id",
    "names.alternative,team.voice[0]",
)

_TIMEOUT = aiohttp.ClientTimeout(total=30)


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """One request of the mix."""

    method: str
    target: str
    """Path and percent-encoded query."""


@dataclass(frozen=True, slots=True)
class TrafficStats:
    """What one :func:`drive` run sent and what came back."""

    sent: int
    """Requests sent (answered or not)."""
    by_status: Mapping[int, int] = field(default_factory=dict)
    """Answers counted by HTTP status."""
    errors: int = 0
    """Requests that got no answer (refused, reset, timed out)."""
    elapsed: float = 0.0
    """Seconds the run took."""


def _sessions(seed: int) -> tuple[str, ...]:
    """A few users' session tokens (secrets: the proxy must redact them before storing)."""
    rng = random.Random(f"sessions-{seed}")
    return tuple(f"{rng.getrandbits(128):032x}" for _ in range(5))


def tour(catalogue: Catalogue) -> Iterator[PlannedRequest]:
    """Every route once, then every title by id once: what a crawler warming a cache sends.
    Routes first, so that even a short or slowed-down run has seen every endpoint."""
    session = _sessions(0)[0]
    for target in (
        "/v3/title/list?id_list=" + ",".join(str(t.id) for t in catalogue.titles[:3]),
        "/v3/title/search?" + urlencode({"search": "атака", "limit": 5}),
        "/v3/title/schedule?days=0,1,2,3,4,5,6",
        *(
            f"/v3/title/updates?page={page}&items_per_page=4&filter=id,code,names,updated"
            for page in range(1, 5)
        ),
        "/v3/genres",
        "/v3/years",
        "/v3/title?code=test",
        f"/v3/user?session={session}",
        f"/v3/user/favorites?session={session}&filter=id,code,names",
    ):
        yield PlannedRequest("GET", target)
    title_id = catalogue.titles[0].id
    yield PlannedRequest("PUT", f"/v3/user/favorites?session={session}&title_id={title_id}")
    for title in catalogue.titles:
        yield PlannedRequest("GET", f"/v3/title?id={title.id}")


def request_mix(
    catalogue: Catalogue, seed: int = 1, *, tour_first: bool = False
) -> Iterator[PlannedRequest]:
    """Endless request targets (path and percent-encoded query), drawn from a seeded mix; with
    ``tour_first``, the :func:`tour` comes before the random part."""
    if tour_first:
        yield from tour(catalogue)
    rng = random.Random(seed)
    ids = [t.id for t in catalogue.titles]
    codes = [t.code for t in catalogue.titles]
    kinds = (
        ("title", 40),
        ("title_code", 8),
        ("title_filter", 4),
        ("list", 12),
        ("list_codes", 3),
        ("search", 8),
        ("search_facets", 3),
        ("schedule", 5),
        ("updates", 10),
        ("genres", 2),
        ("years", 2),
        ("missing", 3),
        ("bad", 1),
        ("user", 1),
        ("favourites", 3),
        ("favourite_write", 1),
    )
    sessions = _sessions(seed)
    names, weights = zip(*kinds, strict=True)
    while True:
        kind = rng.choices(names, weights)[0]
        params: dict[str, str | int]
        path, method = "/v3/title", "GET"
        if kind == "title":
            params = {"id": rng.choice(ids)}
        elif kind == "title_code":
            params = {"code": rng.choice(codes)}
        elif kind == "title_filter":
            params = {"id": rng.choice(ids), "filter": rng.choice(_FILTERS)}
        elif kind == "list":
            path = "/v3/title/list"
            params = {"id_list": ",".join(str(i) for i in rng.sample(ids, rng.randint(2, 4)))}
            if rng.random() < 0.3:
                params["filter"] = "id,code,names,status,genres"
        elif kind == "list_codes":
            path = "/v3/title/list"
            params = {"code_list": ",".join(rng.sample(codes, 2))}
        elif kind == "search":
            path = "/v3/title/search"
            params = {"search": rng.choice(_SEARCHES), "limit": rng.choice((5, 10))}
        elif kind == "search_facets":
            path = "/v3/title/search"
            params = {
                "year": rng.randint(2016, 2024),
                "genres": rng.choice(_SEARCH_GENRES),
                "filter": "id,names,genres,season",
                "order_by": "in_favorites",
                "sort_direction": 1,
            }
        elif kind == "schedule":
            path = "/v3/title/schedule"
            params = {"days": ",".join(sorted(rng.sample("0123456", rng.randint(1, 2))))}
            params["filter"] = "id,code,names,announce,season"
        elif kind == "updates":
            path = "/v3/title/updates"
            if rng.random() < 0.5:
                params = {"limit": rng.choice((3, 5)), "filter": "id,code,names,updated,genres"}
            else:
                params = {
                    "page": rng.choice((1, 1, 2, 3)),
                    "items_per_page": 4,
                    "filter": "id,code,names,updated",
                }
        elif kind == "genres":
            path, params = "/v3/genres", {}
        elif kind == "years":
            path, params = "/v3/years", {}
        elif kind == "user":
            path, params = "/v3/user", {"session": rng.choice(sessions)}
        elif kind == "favourites":
            path = "/v3/user/favorites"
            params = {"session": rng.choice(sessions), "filter": "id,code,names,genres"}
        elif kind == "favourite_write":
            path, method = "/v3/user/favorites", rng.choice(("PUT", "DELETE"))
            params = {"session": rng.choice(sessions), "title_id": rng.choice(ids)}
        elif kind == "missing":
            params = {"id": 99999999} if rng.random() < 0.5 else {"code": "test"}
        else:
            params = {"foo": "bar"}
        query = urlencode(params, safe=",[]*")
        yield PlannedRequest(method, f"{path}?{query}" if query else path)


async def drive(
    base_url: str,
    *,
    duration: float | None,
    requests: int | None,
    concurrency: int = 4,
    seed: int = 1,
    rate: float | None = None,
    stop: asyncio.Event | None = None,
    catalogue: Catalogue | None = None,
    tour_first: bool = False,
) -> TrafficStats:
    """Send the request mix to ``base_url`` until ``requests`` were sent, ``duration`` seconds
    passed or ``stop`` is set, whichever comes first; at most ``rate`` requests per second when
    given; with ``tour_first``, every title and route is visited before the random mix.
    Connection failures are counted, never raised."""
    if duration is None and requests is None and stop is None:
        raise ValueError("drive() needs a duration, a request count or a stop event")
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = None if duration is None else started + duration
    targets = request_mix(catalogue or build_catalogue(), seed, tour_first=tour_first)
    statuses: Counter[int] = Counter()
    counts = {"sent": 0, "errors": 0}
    base = base_url.rstrip("/")

    def claim() -> int | None:
        """The next request's sequence number, or None when the run is over."""
        if stop is not None and stop.is_set():
            return None
        if deadline is not None and loop.time() >= deadline:
            return None
        if requests is not None and counts["sent"] >= requests:
            return None
        counts["sent"] += 1
        return counts["sent"] - 1

    async def worker(session: aiohttp.ClientSession) -> None:
        while (number := claim()) is not None:
            if rate:
                delay = started + number / rate - loop.time()
                if deadline is not None:
                    delay = min(delay, deadline - loop.time())
                if delay > 0:
                    await _pause(delay, stop)
                if started + number / rate > loop.time() + 0.001:
                    counts["sent"] -= 1  # woken by stop or the deadline: this one is not sent
                    return
            planned = next(targets)
            try:
                async with session.request(planned.method, base + planned.target) as response:
                    await response.read()
                    statuses[response.status] += 1
            except (aiohttp.ClientError, TimeoutError):
                counts["errors"] += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=_TIMEOUT) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return TrafficStats(
        sent=counts["sent"],
        by_status=dict(sorted(statuses.items())),
        errors=counts["errors"],
        elapsed=loop.time() - started,
    )


async def _pause(delay: float, stop: asyncio.Event | None) -> None:
    """Sleep ``delay`` seconds, waking early when ``stop`` is set."""
    if stop is None:
        await asyncio.sleep(delay)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=delay)
