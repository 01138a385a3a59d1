"""Realistic comparisons for the API, dashboard, CLI and report tests, written to a real store.

Four endpoints of an AniLibria-like catalogue over the last hour:

- ``titles.list``: 160 comparisons, 4 mismatches (reordered genres, rating float formatting);
- ``GET /v3/title/{id}``: 130 comparisons, 9 mismatches (id as a string: critical; a missing
  field) plus one carrying XSS payloads in body, header and path, and 2 shadow timeouts;
- ``titles.search``: 200 clean comparisons with similar latency (the endpoint that is ready);
- ``schedule``: 30 comparisons, shadow 4x slower (too few samples, too slow).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from shadowproxy.model import Comparison, Difference, DiffKind, Severity, Verdict
from shadowproxy.store.contract import Store
from shadowproxy.store.redaction import RedactionPolicy, redact_comparison
from tests.factories import make_comparison, make_request, make_response, title_document

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
JS_URL = "javascript:alert(1)"
TITLE = "GET /v3/title/{id}"


@dataclass(frozen=True, slots=True)
class Traffic:
    """What was written, for assertions."""

    now: float
    xss_id: str
    """The id of the mismatch carrying the escaping payloads."""
    critical_fingerprint: str
    """The group of ``id`` string-vs-number mismatches on the title endpoint."""


def _list_doc(genres: list[str], rating: float) -> dict[str, object]:
    title = title_document(rating=rating, genres=genres)
    return {
        "list": [title],
        "pagination": {"pages": 12, "current_page": 1, "items_per_page": 1, "total_items": 12},
    }


def comparisons(now: float) -> tuple[list[Comparison], Traffic]:
    """The whole scenario, times counted back from ``now``."""
    out: list[Comparison] = []

    def at(i: int) -> float:
        return now - 3000 + i * 7.0

    def ok(endpoint: str, i: int, primary_ms: float, shadow_ms: float) -> Comparison:
        return make_comparison(
            id=f"{endpoint.replace(' ', '_')}-ok-{i:04d}",
            endpoint=endpoint,
            verdict=Verdict.MATCH,
            request=make_request(path="/v3/title/list", query=f"page={i}", received_at=at(i)),
            primary=make_response(elapsed=primary_ms / 1000),
            shadow=make_response(elapsed=shadow_ms / 1000),
        )

    for i in range(156):
        out.append(ok("titles.list", i, 40 + i % 20, 44 + i % 20))
    genres = Difference(
        "/list/0/genres/1", "/list/*/genres/*", DiffKind.VALUE, "Романтика", "Школа"
    )
    rating = Difference("/list/0/rating", "/list/*/rating", DiffKind.VALUE, 8.7, 8.69)
    for i in range(4):
        out.append(
            make_comparison(
                id=f"list-mm-{i}",
                endpoint="titles.list",
                differences=(genres, rating),
                request=make_request(
                    path="/v3/title/list", query=f"page={i + 2}&items_per_page=1", received_at=at(i)
                ),
                primary=make_response(
                    _list_doc(["Комедия", "Романтика", "Школа"], 8.7), gzipped=True
                ),
                shadow=make_response(_list_doc(["Комедия", "Школа", "Романтика"], 8.69)),
            )
        )

    for i in range(119):
        out.append(ok(TITLE, i, 30 + i % 10, 33 + i % 10))
    id_type = Difference("/id", "/id", DiffKind.TYPE, 9174, "9174", Severity.CRITICAL)
    missing = Difference("/announce", "/announce", DiffKind.MISSING, None, None)
    critical_fingerprint = ""
    for i in range(9):
        primary_doc = title_document()
        shadow_doc = {**title_document(), "id": "9174"}
        del shadow_doc["announce"]
        comparison = make_comparison(
            id=f"title-mm-{i}",
            endpoint=TITLE,
            differences=(id_type, missing),
            request=make_request(path="/v3/title/9174", query="", received_at=at(i + 100)),
            primary=make_response(primary_doc, gzipped=True),
            shadow=make_response(shadow_doc),
        )
        critical_fingerprint = comparison.fingerprint
        out.append(comparison)
    xss_primary = {
        **title_document(),
        "description": SCRIPT,
        "names": {"ru": "Твоё имя", "en": IMG},
    }
    xss_shadow = {**xss_primary, "description": JS_URL, "url": JS_URL}
    xss = make_comparison(
        id="title-xss",
        endpoint=TITLE,
        differences=(
            Difference("/description", "/description", DiffKind.VALUE, SCRIPT, JS_URL),
            Difference("/url", "/url", DiffKind.EXTRA, None, JS_URL),
            Difference("/headers/x-note", "/headers/x-note", DiffKind.HEADER, SCRIPT, IMG),
        ),
        request=make_request(
            path=f"/v3/title/{IMG}",
            query=f"code={JS_URL}&q={SCRIPT}",
            headers=(("accept", "application/json"), ("x-note", SCRIPT), ("referer", JS_URL)),
            received_at=now - 120,
        ),
        primary=make_response(
            xss_primary,
            headers=(("content-type", "application/json"), ("x-note", SCRIPT)),
        ),
        shadow=make_response(
            xss_shadow, headers=(("content-type", "application/json"), ("x-note", IMG))
        ),
    )
    out.append(xss)
    for i in range(2):
        out.append(
            make_comparison(
                id=f"title-err-{i}",
                endpoint=TITLE,
                verdict=Verdict.SHADOW_ERROR,
                request=make_request(path="/v3/title/9000", query="", received_at=at(i + 200)),
            )
        )

    for i in range(200):
        out.append(ok("titles.search", i, 60 + i % 30, 58 + i % 30))
    for i in range(30):
        out.append(ok("schedule", i, 100 + i, 400 + 4 * i))
    return out, Traffic(now=now, xss_id=xss.exchange.id, critical_fingerprint=critical_fingerprint)


async def fill(store: Store, *, now: float | None = None) -> Traffic:
    """Write the scenario to ``store`` (already open), redacted as the pipeline would."""
    batch, traffic = comparisons(time.time() if now is None else now)
    policy = RedactionPolicy()
    batch = [redact_comparison(comparison, policy) for comparison in batch]
    for start in range(0, len(batch), 200):
        await store.write(batch[start : start + 200])
    return traffic
