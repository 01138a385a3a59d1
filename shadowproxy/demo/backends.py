"""The demo's two backends: the legacy AniLibria-style service and its rewrite, as aiohttp apps.

Both serve the AniLibria v3 routes from the same :mod:`~shadowproxy.demo.catalogue`::

    GET /v3/title?id=N | ?code=C            one title
    GET /v3/title/list?id_list=&code_list=  several titles (page, items_per_page)
    GET /v3/title/search?search=&year=&genres=&limit=&page=&items_per_page=
    GET /v3/title/schedule?days=0,1         ongoing titles by weekday
    GET /v3/title/updates?limit=&page=&items_per_page=&since=
    GET /v3/genres, GET /v3/years
    GET /v3/user?session=S                  the session's user
    GET /v3/user/favorites?session=S        their favourite titles (limit, page, items_per_page)
    PUT|DELETE /v3/user/favorites?session=S&title_id=N   {"success": true}

A session is any 32-character hex token (the demo has no log-in); each one has its own fixed
favourites, so a favourite written to the primary alone never makes the two services disagree.

Errors come AniLibria-style: ``{"error": {"code": 404, "message": "Title \\"x\\" not found!"}}``
with the same HTTP status. ``filter`` and ``remove`` take comma-separated dotted paths
(``names.ru``, ``player.list.24``, ``torrents.list[*].torrent_id``).

The legacy service behaves like the Node/Express original: ``X-Powered-By: Express``, compact
UTF-8 JSON, numbers printed the JavaScript way (``6`` for 6.0), gzip when the client accepts it and
the body passes 1 KB. The rewrite answers with Python's ``json.dumps`` defaults (ASCII escapes,
spaced separators) and never compresses: different bytes, same data, except where it really differs.

What the rewrite does differently (the demo's planted findings), see :data:`PLANTED`:

- genres in storage order instead of sorted, on the few titles whose rows are not stored sorted;
- ``id`` as a string in search results;
- the rating rounded half-even instead of half-up (``8.44`` against ``8.45``), and a whole
  rating printed as ``6.0`` where the legacy prints ``6``;
- ``announce`` left out when it is null;
- an extra ``names.jp`` where the database knows the Japanese title;
- ``/v3/title/schedule`` takes about 300 ms;
- ``/v3/title/updates`` fails with a 500 from page 3 on.

And what legitimately differs on every run (noise for the rule file to silence): ``in_favorites``
(the rewrite reads a replica a few favourites behind or ahead), ``updated`` one second apart on a
third of the titles, and ``pagination.took_ms``.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import math
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import orjson
from aiohttp import web

from shadowproxy.demo.catalogue import Catalogue, Document, Title, build_catalogue


@dataclass(frozen=True, slots=True)
class Planted:
    """One deliberate difference of the rewrite, and how a comparison run shows it."""

    description: str
    field: str = ""
    """A path template fragment the stored differences carry (``/names/jp``); empty when the
    difference shows elsewhere."""
    kind: str = ""
    """The difference kind expected at ``field`` (empty: any)."""
    endpoint: str = ""
    """A fragment of the endpoint it shows on (``search``), matching rule names and templates."""
    shadow_error: bool = False
    """Shows as shadow errors on ``endpoint``."""
    slow: bool = False
    """Shows as shadow latency on ``endpoint``."""


PLANTED: tuple[Planted, ...] = (
    Planted("genres in storage order on titles whose rows are not stored sorted", "/genres/*"),
    Planted("id sent as a string in /v3/title/search results", "/list/*/id", "type", "search"),
    Planted("rating rounded half-even (and 6.0 printed with its decimal point)", "/rating"),
    Planted("announce omitted when null", "/announce", "missing"),
    Planted("extra names.jp where the Japanese title is known", "/names/jp", "extra"),
    Planted("/v3/title/schedule answers about 300 ms late", endpoint="schedule", slow=True),
    Planted("/v3/title/updates answers 500 from page 3 on", endpoint="updates", shadow_error=True),
)
"""The rewrite's deliberate differences, for the demo's summary and its tests."""

VOLATILE: tuple[str, ...] = ("in_favorites", "updated", "pagination.took_ms")
"""Fields that legitimately differ between the two services on every run."""

SCHEDULE_DELAY = 0.3
"""Seconds the rewrite spends on ``/v3/title/schedule``."""

FAILING_PAGE = 3
"""The first ``/v3/title/updates`` page the rewrite fails on."""

_GZIP_THRESHOLD = 1024
"""Express's ``compression`` middleware leaves bodies under 1 KB alone."""

_NICKS = ("Mikasa", "Rengoku", "Frieren", "Maomao", "Anya", "Bocchi", "Senku", "Kaguya")

_TITLE_PARAMS = frozenset(
    {
        "id",
        "code",
        "torrent_id",
        "filter",
        "remove",
        "include",
        "description_type",
        "playlist_type",
    }
)


class ApiError(Exception):
    """An AniLibria-style error answer: HTTP status and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class _Flavour:
    """How one implementation renders the shared data."""

    name: str
    render: Callable[[Title], Document]
    """The title document as this service stores it (before per-request volatile fields)."""
    favourites: Callable[[Title], int]
    updated: Callable[[Title], int]
    encode: Callable[[Any], bytes]
    compress: bool
    headers: Mapping[str, str]
    took_ms: Callable[[float], float | int]
    """Milliseconds as this service prints them in ``pagination.took_ms``."""
    string_ids_in_search: bool = False
    schedule_delay: float = 0.0
    failing_page: int | None = None


def _js_number(value: Any) -> Any:
    """A JSON value with whole floats turned into ints, as JavaScript prints them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _legacy_render(title: Title) -> Document:
    return {key: _js_number(value) for key, value in title.document.items()}


def _rewrite_render(title: Title) -> Document:
    legacy = title.document
    document: Document = {}
    for key, value in legacy.items():
        if key == "names":
            names = dict(value)
            if title.name_jp is not None:
                names["jp"] = title.name_jp
            document[key] = names
        elif key == "announce" and value is None:
            continue  # the rewrite's model drops null optionals
        elif key == "genres":
            document[key] = list(title.genres_stored)
        elif key == "rating":
            document[key] = float(
                Decimal(title.rating_raw).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
            )
        else:
            document[key] = value
    return document


def _legacy_encode(value: Any) -> bytes:
    return orjson.dumps(value)


def _rewrite_encode(value: Any) -> bytes:
    return json.dumps(value).encode("ascii")


LEGACY = _Flavour(
    name="legacy",
    render=_legacy_render,
    favourites=lambda title: int(title.document["in_favorites"]),
    updated=lambda title: int(title.document["updated"]),
    encode=_legacy_encode,
    compress=True,
    headers={
        "X-Powered-By": "Express",
        "API-Version": "3.0.14",
        "Access-Control-Allow-Origin": "*",
    },
    took_ms=lambda seconds: round(seconds * 1000),
)
REWRITE = _Flavour(
    name="rewrite",
    render=_rewrite_render,
    # A read replica: a few favourites behind or ahead, timestamps rounded up on a third.
    favourites=lambda title: int(title.document["in_favorites"]) + title.id % 5 - 2,
    updated=lambda title: int(title.document["updated"]) + (title.id % 3 == 0),
    encode=_rewrite_encode,
    compress=False,
    headers={"API-Version": "3.1.0-rc.2"},
    string_ids_in_search=True,
    schedule_delay=SCHEDULE_DELAY,
    failing_page=FAILING_PAGE,
    took_ms=lambda seconds: round(seconds * 1000, 2),
)


# --- filter and remove ---------------------------------------------------------------------------

_Step = str | int | None
"""One path step: a key, a list index, or ``None`` for every element (``[*]``)."""


def _parse_path(text: str) -> tuple[_Step, ...]:
    steps: list[_Step] = []
    for part in text.strip().split("."):
        match = re.fullmatch(r"([^\[\]]*)((?:\[(?:\*|\d+)\])*)", part)
        if match is None or not (match.group(1) or match.group(2)):
            raise ApiError(400, f"Invalid path: {text}")
        if match.group(1):
            steps.append(match.group(1))
        for index in re.findall(r"\[(\*|\d+)\]", match.group(2)):
            steps.append(None if index == "*" else int(index))
    return tuple(steps)


def _paths(raw: str | None) -> tuple[tuple[_Step, ...], ...]:
    if not raw:
        return ()
    return tuple(_parse_path(p) for p in raw.split(",") if p.strip())


def _pick(value: Any, path: Sequence[_Step]) -> Any:
    """The part of ``value`` under ``path``, keeping its enclosing structure; raise KeyError."""
    if not path:
        return value
    step, rest = path[0], path[1:]
    if isinstance(value, dict) and isinstance(step, str | int) and str(step) in value:
        return {str(step): _pick(value[str(step)], rest)}
    if isinstance(value, list) and step is None:
        return [_pick(item, rest) for item in value]
    if isinstance(value, list) and isinstance(step, int) and 0 <= step < len(value):
        return [_pick(value[step], rest)]
    raise KeyError(path)


def _merge(into: Document, part: Any) -> None:
    """Merge the picked ``part`` into ``into``. Nested objects are copied before they change:
    picks share them with the catalogue, which every request reads."""
    for key, value in part.items():
        current = into.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged = dict(current)
            _merge(merged, value)
            into[key] = merged
        else:
            into[key] = value


def _drop(value: Any, path: Sequence[_Step]) -> Any:
    """A copy of ``value`` without what ``path`` names (absent paths change nothing)."""
    if not path:
        return value
    step, rest = path[0], path[1:]
    if isinstance(value, dict) and isinstance(step, str | int):
        key = str(step)
        if key not in value:
            return value
        if not rest:
            return {k: v for k, v in value.items() if k != key}
        return {k: (_drop(v, rest) if k == key else v) for k, v in value.items()}
    if isinstance(value, list) and step is None:
        return [_drop(item, rest) for item in value]
    return value


def _shape(
    document: Document, keep: Sequence[Sequence[_Step]], remove: Sequence[Sequence[_Step]]
) -> Document:
    if keep:
        shaped: Document = {}
        for path in keep:
            try:
                _merge(shaped, _pick(document, path))
            except KeyError:
                continue  # AniLibria silently skips filter paths a title does not have
        document = shaped
    for path in remove:
        document = _drop(document, path)
    return document


# --- the service ---------------------------------------------------------------------------------


def _int(query: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f'Parameter {name} must be an integer, got "{raw}"') from None


def _csv(raw: str | None) -> list[str]:
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


class _Service:
    """The routes over one catalogue, rendered in one flavour."""

    def __init__(self, catalogue: Catalogue, flavour: _Flavour) -> None:
        self._catalogue = catalogue
        self._flavour = flavour
        self._documents = {title.id: flavour.render(title) for title in catalogue.titles}

    # Rendering ---------------------------------------------------------------------------------

    def _document(self, title: Title, query: Mapping[str, str]) -> Document:
        document = dict(self._documents[title.id])
        document["in_favorites"] = self._flavour.favourites(title)
        document["updated"] = self._flavour.updated(title)
        return _shape(document, _paths(query.get("filter")), _paths(query.get("remove")))

    def _respond(self, request: web.Request, payload: Any, status: int = 200) -> web.Response:
        body = self._flavour.encode(payload)
        headers = dict(self._flavour.headers)
        accepts_gzip = "gzip" in request.headers.get("Accept-Encoding", "").lower()
        if self._flavour.compress:
            digest = base64.b64encode(hashlib.sha1(body).digest()).decode()[:27]  # noqa: S324 - an ETag, as Express computes it
            headers["ETag"] = f'W/"{len(body):x}-{digest}"'
            headers["Vary"] = "Accept-Encoding"
            if accepts_gzip and len(body) >= _GZIP_THRESHOLD:
                body = gzip.compress(body, compresslevel=6, mtime=0)
                headers["Content-Encoding"] = "gzip"
        return web.Response(
            body=body,
            status=status,
            headers=headers,
            content_type="application/json",
            charset="utf-8",
        )

    def _error(self, request: web.Request, error: ApiError) -> web.Response:
        # AniLibria repeats the code in the body; every 5xx goes out as 500.
        status = 500 if error.code >= 500 else error.code
        payload = {"error": {"code": error.code, "message": error.message}}
        return self._respond(request, payload, status)

    def _paginate(
        self,
        items: Sequence[Title],
        query: Mapping[str, str],
        *,
        default_limit: int,
        started: float,
    ) -> tuple[list[Title], Document]:
        limit = _int(query, "limit", default_limit) or default_limit
        after = _int(query, "after", 0) or 0
        page = _int(query, "page")
        per_page = _int(query, "items_per_page", limit if limit > 0 else len(items)) or 1
        if per_page < 1:
            raise ApiError(400, "Parameter items_per_page must be positive")
        pool = list(items[after:])
        if page is None:
            chosen = pool if limit == -1 else pool[:limit]
            current = 0
        else:
            if page < 1:
                raise ApiError(400, "Parameter page must be positive")
            if self._flavour.failing_page is not None and page >= self._flavour.failing_page:
                raise _CrashError
            chosen = pool[(page - 1) * per_page : page * per_page]
            current = page
        pagination = {
            "pages": max(1, math.ceil(len(pool) / per_page)),
            "current_page": current,
            "items_per_page": per_page if page is not None else len(chosen),
            "total_items": len(pool),
            "took_ms": self._flavour.took_ms(time.perf_counter() - started),
        }
        return chosen, pagination

    def _find(self, *, title_id: str | None, code: str | None) -> Title:
        if title_id is not None:
            found = self._catalogue.by_id.get(int(title_id)) if title_id.isdigit() else None
            if found is None:
                raise ApiError(404, f'Title "{title_id}" not found!')
            return found
        assert code is not None
        found = self._catalogue.by_code.get(code)
        if found is None:
            raise ApiError(404, f'Title "{code}" not found!')
        return found

    # Routes ------------------------------------------------------------------------------------

    async def title(self, request: web.Request) -> Any:
        query = request.query
        unknown = sorted(set(query) - _TITLE_PARAMS)
        if unknown:
            raise ApiError(412, f"Unknown parameters: {', '.join(unknown)}")
        if "id" not in query and "code" not in query:
            raise ApiError(412, "Required parameter missing: id or code")
        title = self._find(title_id=query.get("id"), code=query.get("code"))
        return self._document(title, query)

    async def title_list(self, request: web.Request) -> Any:
        query = request.query
        ids, codes = _csv(query.get("id_list")), _csv(query.get("code_list"))
        if not ids and not codes:
            raise ApiError(412, "Required parameter missing: id_list or code_list")
        by_id, by_code = self._catalogue.by_id, self._catalogue.by_code
        titles = [by_id[int(i)] for i in ids if i.isdigit() and int(i) in by_id]
        titles += [by_code[c] for c in codes if c in by_code]
        page = _int(query, "page")
        if page is not None:
            per_page = _int(query, "items_per_page", 5) or 5
            titles = titles[(page - 1) * per_page : page * per_page] if page > 0 else []
        return [self._document(t, query) for t in titles]

    async def search(self, request: web.Request) -> Any:
        started = time.perf_counter()
        query = request.query
        needle = (query.get("search") or "").casefold().strip()
        years = {int(y) for y in _csv(query.get("year")) if y.isdigit()}
        genres = {g.casefold() for g in _csv(query.get("genres"))}
        kinds = {int(k) for k in _csv(query.get("type")) if k.isdigit()}
        found = []
        for title in self._catalogue.titles:
            document = title.document
            names = [n for n in document["names"].values() if n]
            if needle and not any(needle in n.casefold() for n in names):
                continue
            if years and document["season"]["year"] not in years:
                continue
            if genres and not genres <= {g.casefold() for g in document["genres"]}:
                continue
            if kinds and document["type"]["code"] not in kinds:
                continue
            found.append(title)
        order = query.get("order_by")
        if order in {"in_favorites", "updated", "id"}:
            descending = query.get("sort_direction", "0") == "1"
            found.sort(key=lambda t: int(t.document[order]), reverse=descending)
        chosen, pagination = self._paginate(found, query, default_limit=5, started=started)
        items = [self._document(t, query) for t in chosen]
        if self._flavour.string_ids_in_search:
            items = [{**item, "id": str(item["id"])} if "id" in item else item for item in items]
        return {"list": items, "pagination": pagination}

    async def schedule(self, request: web.Request) -> Any:
        if self._flavour.schedule_delay:
            await asyncio.sleep(self._flavour.schedule_delay)
        wanted = _csv(request.query.get("days")) or [str(d) for d in range(7)]
        days = []
        for raw in wanted:
            if not raw.isdigit() or not 0 <= int(raw) <= 6:
                raise ApiError(400, f"Invalid day: {raw}")
            days.append(int(raw))
        return [
            {
                "day": day,
                "list": [
                    self._document(t, request.query)
                    for t in self._catalogue.titles
                    if t.document["status"]["code"] == 1 and t.document["season"]["week_day"] == day
                ],
            }
            for day in days
        ]

    async def updates(self, request: web.Request) -> Any:
        started = time.perf_counter()
        query = request.query
        since = _int(query, "since", 0) or 0
        # Both services sort on the stored value, so the replica's rounding never reorders pages.
        ordered = sorted(
            (t for t in self._catalogue.titles if int(t.document["updated"]) > since),
            key=lambda t: (int(t.document["updated"]), t.id),
            reverse=True,
        )
        chosen, pagination = self._paginate(ordered, query, default_limit=5, started=started)
        return {"list": [self._document(t, query) for t in chosen], "pagination": pagination}

    def _session(self, query: Mapping[str, str]) -> random.Random:
        """A generator seeded by the session token: the same session, the same user."""
        session = query.get("session", "")
        if not re.fullmatch(r"[0-9a-f]{32}", session):
            raise ApiError(401, "Invalid session")
        return random.Random(int(session, 16))

    async def user(self, request: web.Request) -> Any:
        rng = self._session(request.query)
        login = f"{rng.choice(_NICKS)}{rng.randint(1, 999)}"
        return {
            "login": login,
            "nickname": login,
            "email": f"{login.lower()}@example.org",
            "avatar_original": "/",
            "avatar_thumbnail": "/",
            "vk_id": None,
            "patreon_id": None,
        }

    async def favourites(self, request: web.Request) -> Any:
        started = time.perf_counter()
        rng = self._session(request.query)
        chosen = rng.sample(self._catalogue.titles, rng.randint(2, 8))
        page, pagination = self._paginate(chosen, request.query, default_limit=5, started=started)
        return {"list": [self._document(t, request.query) for t in page], "pagination": pagination}

    async def favourite_write(self, request: web.Request) -> Any:
        self._session(request.query)
        raw = request.query.get("title_id")
        if raw is None:
            raise ApiError(412, "Required parameter missing: title_id")
        self._find(title_id=raw, code=None)
        return {"success": True}

    async def genres(self, request: web.Request) -> Any:
        return self._catalogue.genres

    async def years(self, request: web.Request) -> Any:
        return self._catalogue.years

    def handler(self, route: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
        """Wrap a route: its value becomes a JSON answer, an :class:`ApiError` an error answer."""

        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                payload = await route(request)
            except ApiError as error:
                return self._error(request, error)
            except _CrashError:
                return web.Response(
                    status=500,
                    text="500 Internal Server Error\n\nServer got itself in trouble",
                    content_type="text/plain",
                )
            return self._respond(request, payload)

        return handle

    def routes(self) -> Iterable[tuple[str, str, Callable[[web.Request], Any]]]:
        """(method, path, route) for every route served."""
        yield "GET", "/v3/title", self.title
        yield "GET", "/v3/title/list", self.title_list
        yield "GET", "/v3/title/search", self.search
        yield "GET", "/v3/title/schedule", self.schedule
        yield "GET", "/v3/title/updates", self.updates
        yield "GET", "/v3/genres", self.genres
        yield "GET", "/v3/years", self.years
        yield "GET", "/v3/user", self.user
        yield "GET", "/v3/user/favorites", self.favourites
        yield "PUT", "/v3/user/favorites", self.favourite_write
        yield "DELETE", "/v3/user/favorites", self.favourite_write


class _CrashError(Exception):
    """The rewrite's unhandled error on late update pages (answered as aiohttp's bare 500)."""


def _app(flavour: _Flavour, catalogue: Catalogue | None) -> web.Application:
    service = _Service(catalogue or build_catalogue(), flavour)
    app = web.Application()
    for method, path, route in service.routes():
        app.router.add_route(method, path, service.handler(route))
    return app


def legacy_app(catalogue: Catalogue | None = None) -> web.Application:
    """The legacy (Node/Express-like) AniLibria v3 service."""
    return _app(LEGACY, catalogue)


def rewrite_app(catalogue: Catalogue | None = None) -> web.Application:
    """The rewrite, with the differences listed in :data:`PLANTED`."""
    return _app(REWRITE, catalogue)
