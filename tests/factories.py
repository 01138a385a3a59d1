"""Realistic pipeline objects in one call, for any test (like mitmproxy's ``tflow()``).

``make_comparison()`` gives a mismatch on an AniLibria-like title endpoint: a JSON request with an
authorization header, a gzip'd primary body and a plain shadow body, and two differences. Every
part can be overridden by keyword.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import time
from collections.abc import Sequence
from typing import Any

import orjson

from shadowproxy.model import (
    BackendError,
    CapturedRequest,
    CapturedResponse,
    Comparison,
    Difference,
    DiffKind,
    ErrorKind,
    Exchange,
    Headers,
    Outcome,
    Severity,
    Verdict,
)

_ids = itertools.count(1)


def title_document(
    title_id: int = 9174,
    *,
    rating: float = 8.7,
    genres: Sequence[str] = ("Комедия", "Романтика", "Школа"),
) -> dict[str, Any]:
    """A title as the catalogue API returns it."""
    return {
        "id": title_id,
        "code": "kimi-no-na-wa",
        "names": {"ru": "Твоё имя", "en": "Your Name", "alternative": None},
        "announce": None,
        "status": {"string": "Завершен", "code": 2},
        "type": {"full_string": "Фильм, 106 мин.", "code": 0, "string": "MOVIE", "episodes": None},
        "genres": list(genres),
        "team": {"voice": ["Amikiri", "Silv"], "translator": ["Inari"]},
        "season": {"string": "лето", "code": 3, "year": 2016},
        "rating": rating,
        "in_favorites": 24310,
        "updated": 1656280895,
        "posters": {"small": {"url": "https://static.example.org/posters/9174/small.jpg"}},
        "description": "Мицуха — обычная школьница из маленького городка.",
    }


def make_request(
    *,
    method: str = "GET",
    path: str = "/api/v1/title",
    query: str = "id=9174&filter=names,genres",
    headers: Headers = (
        ("host", "catalogue.example.org"),
        ("accept", "application/json"),
        ("accept-encoding", "gzip"),
        ("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.c2hhZG93.c2lnbg"),
        ("user-agent", "anime-app/3.2"),
    ),
    body: bytes = b"",
    received_at: float | None = None,
) -> CapturedRequest:
    return CapturedRequest(
        method=method,
        path=path,
        query=query,
        headers=headers,
        body=body,
        received_at=time.time() if received_at is None else received_at,
    )


def make_response(
    document: Any = None,
    *,
    status: int = 200,
    headers: Headers | None = None,
    gzipped: bool = False,
    elapsed: float = 0.042,
    body: bytes | None = None,
) -> CapturedResponse:
    """A JSON response carrying ``document`` (a title by default), optionally gzip-encoded."""
    raw = (
        body
        if body is not None
        else orjson.dumps(title_document() if document is None else document)
    )
    if gzipped:
        raw = gzip.compress(raw, mtime=0)
    if headers is None:
        headers = (("content-type", "application/json; charset=utf-8"),)
        if gzipped:
            headers += (("content-encoding", "gzip"),)
        headers += (("set-cookie", "PHPSESSID=8c1f0a; Path=/; HttpOnly"),)
    return CapturedResponse(status=status, headers=headers, body=raw, elapsed=elapsed)


DEFAULT_DIFFERENCES = (
    Difference("/rating", "/rating", DiffKind.VALUE, 8.7, 8.69),
    Difference("/genres/1", "/genres/*", DiffKind.VALUE, "Романтика", "Школа"),
)


def fingerprint_of(endpoint: str, differences: Sequence[Difference]) -> str:
    pairs = sorted({(d.template, d.kind.value) for d in differences})
    text = endpoint + "|" + "|".join(f"{t}\x00{k}" for t, k in pairs)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_comparison(
    *,
    id: str | None = None,
    endpoint: str = "GET /api/v1/title",
    verdict: Verdict = Verdict.MISMATCH,
    differences: Sequence[Difference] | None = None,
    request: CapturedRequest | None = None,
    primary: Outcome | None = None,
    shadow: Outcome | None = None,
    received_at: float | None = None,
    fingerprint: str | None = None,
    reason: str = "",
    ruleset_version: str = "r1a2b3c",
    critical: bool | None = None,
) -> Comparison:
    """A comparison with realistic content; ``verdict`` picks sensible defaults for the rest."""
    if differences is None:
        differences = DEFAULT_DIFFERENCES if verdict is Verdict.MISMATCH else ()
    if primary is None:
        primary = make_response(gzipped=True, elapsed=0.031)
    if shadow is None:
        if verdict is Verdict.SHADOW_ERROR:
            shadow = BackendError(ErrorKind.TIMEOUT, 5.0, "TimeoutError: shadow took over 5s")
            reason = reason or "timeout"
        elif verdict is Verdict.MISMATCH:
            shadow = make_response(
                title_document(rating=8.69, genres=("Комедия", "Школа")), elapsed=0.055
            )
        else:
            shadow = make_response(elapsed=0.048)
    if verdict is Verdict.SKIPPED:
        reason = reason or "body too large"
    exchange = Exchange(
        id=id or f"{next(_ids):08x}{int(time.time() * 1000) & 0xFFFFFFFF:08x}",
        endpoint=endpoint,
        request=request or make_request(received_at=received_at),
        primary=primary,
        shadow=shadow,
    )
    return Comparison(
        exchange=exchange,
        verdict=verdict,
        differences=tuple(differences),
        ruleset_version=ruleset_version,
        fingerprint=fingerprint
        if fingerprint is not None
        else (fingerprint_of(endpoint, differences) if verdict is not Verdict.MATCH else ""),
        reason=reason,
        duration=0.0004,
        critical=any(d.severity is Severity.CRITICAL for d in differences)
        if critical is None
        else critical,
    )


def make_batch(count: int, **kwargs: Any) -> list[Comparison]:
    return [make_comparison(**kwargs) for _ in range(count)]
