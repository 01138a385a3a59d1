"""The admin JSON API (``/api/v1/...``): what the dashboard shows, for scripts too.

Read-only views of the store (summary, trend, fields, mismatches, groups, readiness, report
downloads) and one state change (triage of a group). Everything reads the store through the
:class:`~shadowproxy.store.contract.Store` contract only. Authentication is the admin app's
middleware's job, not this module's.

Errors are JSON ``{"error": "..."}``: 400 for bad parameters (named in the message), 404 for an
unknown id or fingerprint, 413 for an oversized body, 503 when the store cannot answer.
The full description is the OpenAPI document at ``/api/v1/openapi.json``.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from shadowproxy import appkeys
from shadowproxy.admin.openapi import openapi_document
from shadowproxy.report.curl import curl_command
from shadowproxy.report.formats import FORMATS
from shadowproxy.report.model import collect_report, field_shares, totals_of
from shadowproxy.report.readiness import Criteria, assess_all
from shadowproxy.report.schema import (
    criteria_json,
    field_json,
    group_json,
    mismatch_json,
    readiness_json,
    summary_json,
    totals_json,
)
from shadowproxy.report.snippet import silencing_rule
from shadowproxy.report.window import Window, WindowError, parse_window
from shadowproxy.store.contract import Store, StoreError, TriageState

PREFIX = "/api/v1"
TRIAGE_BODY_MAX = 16 * 1024
"""Bytes accepted in a triage request body (a state and a short note)."""
NOTE_MAX = 2000
LIMIT_MAX = 500
TREND_BUCKETS_MAX = 500
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_DIGITS = re.compile(r"[0-9]{1,15}")
_VERDICTS = ("mismatch", "shadow_error")
_JSON_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _RefusedError(Exception):
    """A parameter or body the API refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def setup_api(app: web.Application) -> None:
    """Add every ``/api/v1`` route to the admin app (the store is ``app[appkeys.STORE]``)."""
    routes = (
        ("GET", "/summary", _summary),
        ("GET", "/trend", _trend),
        ("GET", "/fields", _fields),
        ("GET", "/mismatches", _mismatches),
        ("GET", "/mismatches/{id}", _mismatch),
        ("GET", "/groups", _groups),
        ("POST", "/groups/{fingerprint}/triage", _triage),
        ("GET", "/readiness", _readiness),
        ("GET", "/report", _report),
        ("GET", "/openapi.json", _openapi),
    )
    for method, path, handler in routes:
        app.router.add_route(method, PREFIX + path, _guarded(handler))


def _guarded(handler: Handler) -> Handler:
    """Turn refusals and store failures into JSON errors instead of HTML 500 pages."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except _RefusedError as exc:
            return _json({"error": str(exc)}, status=exc.status)
        except StoreError as exc:
            if isinstance(exc, ValueError):
                # A store error that is also a ValueError blames the input: a mangled cursor.
                return _json({"error": str(exc)}, status=400)
            return _json({"error": f"store unavailable: {exc}"}, status=503)

    return wrapper


def _json(data: Any, *, status: int = 200) -> web.Response:
    return web.json_response(
        data,
        status=status,
        headers=_JSON_HEADERS,
        dumps=functools.partial(json.dumps, ensure_ascii=False, allow_nan=False),
    )


def _store(request: web.Request) -> Store:
    return request.app[appkeys.STORE]


# --- parameters -------------------------------------------------------------------------------


def _text(request: web.Request, name: str, *, max_len: int = 500) -> str | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    if len(value) > max_len:
        raise _RefusedError(f"{name}: longer than {max_len} characters")
    return value


def _window(request: web.Request, *, now: float | None = None) -> Window:
    try:
        return parse_window(
            _text(request, "since"),
            _text(request, "until"),
            now=time.time() if now is None else now,
        )
    except WindowError as exc:
        raise _RefusedError(f"since/until: {exc}") from None


def _number(request: web.Request, name: str, default: float, *, low: float, high: float) -> float:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw.strip().removesuffix("%")) / (100 if raw.strip().endswith("%") else 1)
    except ValueError:
        raise _RefusedError(f"{name}: {raw[:40]!r} is not a number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise _RefusedError(f"{name}: {raw[:40]!r} is outside [{low:g}, {high:g}]")
    return value


def _integer(request: web.Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise _RefusedError(f"{name}: {raw[:40]!r} is not a whole number in [{low}, {high}]")
    return int(raw)


def criteria_from(request: web.Request) -> Criteria:
    """Readiness criteria from query parameters, each defaulting to :class:`Criteria`'s."""
    defaults = Criteria()
    return Criteria(
        max_mismatch_rate=_number(
            request, "max_mismatch_rate", defaults.max_mismatch_rate, low=0, high=1
        ),
        max_shadow_error_rate=_number(
            request, "max_shadow_error_rate", defaults.max_shadow_error_rate, low=0, high=1
        ),
        max_critical=_integer(request, "max_critical", defaults.max_critical, low=0, high=10**9),
        max_latency_ratio=_number(
            request, "max_latency_ratio", defaults.max_latency_ratio, low=0, high=1000
        ),
        max_shadow_p95_ms=_number(
            request, "max_shadow_p95_ms", defaults.max_shadow_p95_ms, low=0, high=3_600_000
        ),
        min_samples=_integer(request, "min_samples", defaults.min_samples, low=0, high=10**12),
    )


def _window_json(window: Window) -> dict[str, Any]:
    return {"since": window.since, "until": window.until}


# --- handlers ---------------------------------------------------------------------------------


async def _summary(request: web.Request) -> web.Response:
    window = _window(request)
    summaries = await _store(request).summary(
        since=window.since, until=window.until, endpoint=_text(request, "endpoint")
    )
    summaries = sorted(summaries, key=lambda item: item.endpoint)
    return _json(
        {
            "window": _window_json(window),
            "endpoints": [summary_json(item) for item in summaries],
            "totals": totals_json(totals_of(summaries)),
        }
    )


async def _trend(request: web.Request) -> web.Response:
    now = time.time()
    window = _window(request, now=now)
    buckets = _integer(request, "buckets", 60, low=1, high=TREND_BUCKETS_MAX)
    points = await _store(request).trend(
        since=window.since, until=window.until, endpoint=_text(request, "endpoint")
    )
    start = window.since if window.since is not None else min((p.minute for p in points), default=0)
    end = window.until if window.until is not None else now
    # Buckets are whole minutes wide (the store counts per minute), at least one.
    width = max(60.0, math.ceil((end - start) / buckets / 60.0 - 1e-9) * 60.0)
    count = max(1, min(buckets, math.ceil((end - start) / width)))
    series: dict[str, list[dict[str, Any]]] = {}
    for point in points:
        rows = series.get(point.endpoint)
        if rows is None:
            rows = series[point.endpoint] = [
                {"start": start + i * width, "compared": 0, "mismatches": 0, "shadow_errors": 0}
                for i in range(count)
            ]
        index = min(count - 1, max(0, int((point.minute - start) // width)))
        rows[index]["compared"] += point.compared
        rows[index]["mismatches"] += point.mismatches
        rows[index]["shadow_errors"] += point.shadow_errors
    return _json(
        {
            "window": {"since": start, "until": end},
            "bucket_seconds": width,
            "endpoints": [{"endpoint": name, "points": series[name]} for name in sorted(series)],
        }
    )


async def _fields(request: web.Request) -> web.Response:
    window = _window(request)
    endpoint = _text(request, "endpoint")
    store = _store(request)
    fields = await store.fields(endpoint=endpoint, since=window.since, until=window.until)
    summaries = await store.summary(since=window.since, until=window.until, endpoint=endpoint)
    compared = {item.endpoint: item.compared for item in summaries}
    by_endpoint: dict[str, list[Any]] = {}
    for item in fields:
        by_endpoint.setdefault(item.endpoint, []).append(item)
    return _json(
        {
            "window": _window_json(window),
            "endpoints": [
                {
                    "endpoint": name,
                    "compared": compared.get(name, 0),
                    "fields": [
                        field_json(share)
                        for share in field_shares(by_endpoint[name], compared.get(name, 0))
                    ],
                }
                for name in sorted(by_endpoint)
            ],
        }
    )


async def _mismatches(request: web.Request) -> web.Response:
    window = _window(request)
    verdict = _text(request, "verdict")
    if verdict is not None and verdict not in _VERDICTS:
        raise _RefusedError(f"verdict: expected one of {', '.join(_VERDICTS)}")
    fingerprint = _text(request, "fingerprint")
    if fingerprint is not None and not _ID.fullmatch(fingerprint):
        raise _RefusedError("fingerprint: not a fingerprint")
    page = await _store(request).mismatches(
        endpoint=_text(request, "endpoint"),
        verdict=verdict,
        fingerprint=fingerprint,
        since=window.since,
        until=window.until,
        cursor=_text(request, "cursor", max_len=1000),
        limit=_integer(request, "limit", 50, low=1, high=LIMIT_MAX),
    )
    return _json(
        {
            "items": [mismatch_json(record, full=False) for record in page.items],
            "next_cursor": page.next_cursor,
        }
    )


async def _mismatch(request: web.Request) -> web.Response:
    record_id = request.match_info["id"]
    if not _ID.fullmatch(record_id):
        raise _RefusedError("id: not a mismatch id")
    record = await _store(request).mismatch(record_id)
    if record is None:
        raise _RefusedError(f"no mismatch with id {record_id}", status=404)
    shaped = mismatch_json(record, full=True)
    shaped["curl"] = {
        side: curl_command(
            record.method,
            record.target,
            record.request_headers,
            record.request_body,
            base_url=base,
        )
        for side, base in _backends(request).items()
    }
    return _json(shaped)


def _backends(request: web.Request) -> dict[str, str]:
    """Where a copied curl should go: the configured backends, else the proxy's listener."""
    settings = request.app.get(appkeys.SETTINGS)
    if settings is None:
        return {"proxy": "http://127.0.0.1:8080"}
    backends = {"primary": settings.primary, "shadow": settings.shadow}
    found = {side: url for side, url in backends.items() if url}
    return found or {"proxy": f"http://{settings.listen}"}


async def _groups(request: web.Request) -> web.Response:
    raw_state = _text(request, "state")
    try:
        state = TriageState(raw_state) if raw_state is not None else None
    except ValueError:
        raise _RefusedError("state: expected open, acknowledged or expected") from None
    page = await _store(request).groups(
        endpoint=_text(request, "endpoint"),
        state=state,
        cursor=_text(request, "cursor", max_len=1000),
        limit=_integer(request, "limit", 50, low=1, high=LIMIT_MAX),
    )
    return _json(
        {"items": [group_json(group) for group in page.items], "next_cursor": page.next_cursor}
    )


async def _triage(request: web.Request) -> web.Response:
    fingerprint = request.match_info["fingerprint"]
    if not _ID.fullmatch(fingerprint):
        raise _RefusedError("fingerprint: not a fingerprint")
    payload = await _json_body(request)
    state_text = payload.get("state")
    try:
        state = TriageState(str(state_text))
    except ValueError:
        raise _RefusedError("state: expected open, acknowledged or expected") from None
    note = payload.get("note", "")
    if not isinstance(note, str) or len(note) > NOTE_MAX:
        raise _RefusedError(f"note: expected a string of at most {NOTE_MAX} characters")
    group = await _store(request).set_triage(fingerprint, state, note)
    if group is None:
        raise _RefusedError(f"no group with fingerprint {fingerprint}", status=404)
    snippet = None
    if state is TriageState.EXPECTED:
        snippet = silencing_rule(group, rule_exists=_rule_exists(request, group.endpoint))
    return _json({"group": group_json(group), "snippet": snippet})


def _rule_exists(request: web.Request, endpoint: str) -> bool:
    rules = request.app.get(appkeys.RULES)
    return rules is not None and rules.current.by_name(endpoint) is not None


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > TRIAGE_BODY_MAX:
        raise _RefusedError(f"body larger than {TRIAGE_BODY_MAX} bytes", status=413)
    raw = await request.content.read(TRIAGE_BODY_MAX + 1)
    if len(raw) > TRIAGE_BODY_MAX:
        raise _RefusedError(f"body larger than {TRIAGE_BODY_MAX} bytes", status=413)
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _RefusedError(
            'body: expected JSON like {"state": "acknowledged", "note": ""}'
        ) from None
    if not isinstance(payload, dict):
        raise _RefusedError("body: expected a JSON object")
    return payload


async def _readiness(request: web.Request) -> web.Response:
    window = _window(request)
    criteria = criteria_from(request)
    summaries = await _store(request).summary(
        since=window.since, until=window.until, endpoint=_text(request, "endpoint")
    )
    verdicts = assess_all(sorted(summaries, key=lambda item: item.endpoint), criteria)
    return _json(
        {
            "window": _window_json(window),
            "criteria": criteria_json(criteria),
            "passed": bool(verdicts) and all(item.passed for item in verdicts),
            "endpoints": [readiness_json(item) for item in verdicts],
        }
    )


async def _report(request: web.Request) -> web.Response:
    name = request.query.get("format", "html")
    chosen = FORMATS.get(name)
    if chosen is None:
        raise _RefusedError(f"format: expected one of {', '.join(FORMATS)}")
    report = await collect_report(
        _store(request),
        window=_window(request),
        criteria=criteria_from(request),
        endpoint=_text(request, "endpoint"),
        examples=_integer(request, "examples", 3, low=0, high=20),
    )
    stamp = datetime.fromtimestamp(report.generated_at, UTC).strftime("%Y%m%d-%H%M%S")
    headers = {
        "Content-Disposition": f'attachment; filename="shadowproxy-report-{stamp}.'
        f'{chosen.extension}"',
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
        # Opened in place instead of saved, the HTML report still runs nothing.
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    }
    return web.Response(
        body=chosen.render(report),
        headers={**headers, "Content-Type": chosen.media_type},
    )


async def _openapi(request: web.Request) -> web.Response:
    return _json(openapi_document())
