"""The comparator: verdicts, status/header/body comparison, encodings, and hostile bodies."""

from __future__ import annotations

import gc
import gzip
import pickle
import zlib
from typing import Any

import brotli
import orjson
import pytest

from shadowproxy.compare.comparator import compare, fingerprint
from shadowproxy.model import (
    BackendError,
    CapturedResponse,
    Comparison,
    DiffKind,
    ErrorKind,
    Exchange,
    Headers,
    Severity,
    Verdict,
)
from shadowproxy.rules import EndpointRules, parse_ruleset
from tests.factories import make_request, title_document

JSON: Headers = (("content-type", "application/json; charset=utf-8"),)
DEFAULTS = EndpointRules(name=None)


def response(
    body: Any = None,
    *,
    status: int = 200,
    headers: Headers = JSON,
    raw: bytes | None = None,
    truncated: bool = False,
) -> CapturedResponse:
    data = raw if raw is not None else orjson.dumps(title_document() if body is None else body)
    return CapturedResponse(
        status=status, headers=headers, body=data, elapsed=0.01, truncated=truncated
    )


def run(primary: Any, shadow: Any, rules: EndpointRules = DEFAULTS) -> Comparison:
    exchange = Exchange(
        id="e1", endpoint="GET /v3/title", request=make_request(), primary=primary, shadow=shadow
    )
    return compare(exchange, rules, "v1")


def test_identical_responses_match() -> None:
    """Two identical responses are a match with no differences and no fingerprint."""
    result = run(response(), response())
    assert (Verdict.MATCH, (), "", "v1") == (
        result.verdict,
        result.differences,
        result.fingerprint,
        result.ruleset_version,
    )


def test_body_difference_is_a_mismatch_with_pointer_and_fingerprint() -> None:
    """A changed field is a mismatch naming the field by RFC 6901 pointer; the fingerprint is the
    hash of endpoint and (template, kind) pairs."""
    changed = title_document()
    changed["names"]["ru"] = "Твое имя"
    result = run(response(), response(changed))
    assert Verdict.MISMATCH == result.verdict
    assert [("/names/ru", DiffKind.VALUE, "Твоё имя", "Твое имя")] == [
        (d.pointer, d.kind, d.primary, d.shadow) for d in result.differences
    ]
    assert fingerprint("GET /v3/title", result.differences) == result.fingerprint
    assert 16 == len(result.fingerprint)


def test_fingerprint_groups_same_templates_regardless_of_index() -> None:
    """Mismatches at different array indices of the same field share a fingerprint."""
    a = run(response({"list": [1, 2, 3]}), response({"list": [1, 2, 4]}))
    b = run(response({"list": [1, 2, 3]}), response({"list": [0, 2, 3]}))
    assert a.fingerprint == b.fingerprint


def test_primary_error_is_skipped() -> None:
    """A primary that failed leaves nothing to compare: skipped with the error kind."""
    result = run(BackendError(ErrorKind.CONNECT, 0.1), response())
    assert (Verdict.SKIPPED, "primary_error: connect") == (result.verdict, result.reason)


def test_shadow_error_verdict_names_the_kind() -> None:
    """A shadow timeout is a shadow_error whose reason is the error kind."""
    result = run(response(), BackendError(ErrorKind.TIMEOUT, 5.0))
    assert (Verdict.SHADOW_ERROR, "timeout") == (result.verdict, result.reason)


def test_shadow_5xx_is_shadow_error_with_status_difference() -> None:
    """A shadow 503 against a primary 200 is a shadow_error, still listing the status difference."""
    result = run(
        response(),
        response(raw=b"<h1>busy</h1>", status=503, headers=(("content-type", "text/html"),)),
    )
    assert (Verdict.SHADOW_ERROR, "status 503") == (result.verdict, result.reason)
    assert ("/status", DiffKind.STATUS, 200, 503) == (
        result.differences[0].pointer,
        result.differences[0].kind,
        result.differences[0].primary,
        result.differences[0].shadow,
    )


def test_both_5xx_is_compared_normally() -> None:
    """When the primary fails too, equal error bodies match: the rewrite reproduces the legacy."""
    error = {"error": {"code": 500, "message": "boom"}}
    assert Verdict.MATCH == run(response(error, status=500), response(error, status=500)).verdict


def test_truncated_body_is_skipped_too_large() -> None:
    """A body cut at the capture cap cannot be compared: skipped as too_large."""
    result = run(response(truncated=True), response())
    assert (Verdict.SKIPPED, "too_large") == (result.verdict, result.reason)


def test_status_equivalence_rule() -> None:
    """200 against 201 is equal when the rules declare them equivalent."""
    rules = parse_ruleset("version: 1\ndefaults:\n  status: {equivalent: [[200, 201]]}\n").defaults
    assert Verdict.MATCH == run(response(), response(status=201), rules).verdict
    assert Verdict.MISMATCH == run(response(), response(status=201)).verdict


def test_content_type_normalised_and_other_headers_ignored() -> None:
    """Content-Type is compared after normalising case and spacing; unlisted headers are not."""
    shadow = response(
        headers=(("Content-Type", "application/json;charset=UTF-8"), ("x-powered-by", "uvicorn"))
    )
    assert Verdict.MATCH == run(response(), shadow).verdict


def test_content_type_difference_is_a_header_difference() -> None:
    """A different media type is reported at /headers/content-type."""
    shadow = response(headers=(("content-type", "text/plain"),))
    result = run(response(), shadow)
    assert [("/headers/content-type", DiffKind.HEADER)] == [
        (d.pointer, d.kind) for d in result.differences
    ]


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", lambda b: gzip.compress(b, mtime=0)),
        ("deflate", zlib.compress),
        ("deflate", lambda b: (lambda c: c.compress(b) + c.flush())(zlib.compressobj(wbits=-15))),
        ("br", brotli.compress),
    ],
)
def test_encoded_body_equals_plain_body(coding: str, encode: Any) -> None:
    """A compressed primary body matches the same document sent plain by the shadow."""
    raw = orjson.dumps(title_document())
    primary = response(raw=encode(raw), headers=(*JSON, ("content-encoding", coding)))
    assert Verdict.MATCH == run(primary, response(raw=raw)).verdict


def test_corrupt_encoding_is_unparseable() -> None:
    """A body that does not decode in its declared encoding is an unparseable difference."""
    primary = response(raw=b"not gzip at all", headers=(*JSON, ("content-encoding", "gzip")))
    result = run(primary, response())
    assert [DiffKind.UNPARSEABLE] == [d.kind for d in result.differences]
    assert "gzip" in result.differences[0].primary


def test_compression_bomb_is_skipped() -> None:
    """A body decoding beyond the limit is skipped as too large, not expanded into memory."""
    bomb = gzip.compress(b"0" * (80 * 1024 * 1024), compresslevel=1)
    result = run(response(raw=bomb, headers=(*JSON, ("content-encoding", "gzip"))), response())
    assert (Verdict.SKIPPED, "too_large") == (result.verdict, result.reason)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 Bad Gateway</html>",
        b'{"rating": NaN}',
        b'{"rating": Infinity}',
        b'{"name": "\xff\xfe"}',
        b"[" * 10_000 + b"]" * 10_000,
        b'{"a": 1',
    ],
    ids=["html", "nan", "infinity", "invalid-utf8", "deep-10000", "cut"],
)
def test_bad_json_is_an_unparseable_difference(body: bytes) -> None:
    """A shadow body that is not valid JSON gives one unparseable difference, never an error."""
    result = run(response(), response(raw=body))
    assert Verdict.MISMATCH == result.verdict
    assert [("", DiffKind.UNPARSEABLE)] == [(d.pointer, d.kind) for d in result.differences]
    assert result.differences[0].primary is None
    assert "not valid JSON" in result.differences[0].shadow


def test_duplicate_keys_last_wins() -> None:
    """Of duplicate keys the last value counts (as JavaScript's JSON.parse does)."""
    result = run(response({"id": 2}), response(raw=b'{"id": 1, "id": 2}'))
    assert Verdict.MATCH == result.verdict


def test_text_bodies_compared_as_text() -> None:
    """Non-JSON bodies are compared as text; a difference shows context around it."""
    html = (("content-type", "text/html"),)
    result = run(
        response(raw=b"<p>hello</p>", headers=html), response(raw=b"<p>hellO</p>", headers=html)
    )
    assert [("", DiffKind.TEXT, "<p>hello</p>", "<p>hellO</p>")] == [
        (d.pointer, d.kind, d.primary, d.shadow) for d in result.differences
    ]


def test_critical_flag_follows_rules() -> None:
    """A difference under a critical path marks the comparison critical."""
    rules = parse_ruleset("version: 1\ndefaults:\n  critical: [/names]\n").defaults
    changed = title_document()
    changed["names"]["en"] = "Kimi no Na wa"
    result = run(response(), response(changed), rules)
    assert (True, Severity.CRITICAL) == (result.critical, result.differences[0].severity)


def test_rules_survive_pickling_and_still_work() -> None:
    """Endpoint rules pickle (they travel to worker processes) and compare the same afterwards."""
    rules = parse_ruleset(
        "version: 1\ndefaults:\n  ignore: [/in_favorites]\n  unordered: {/genres: {}}\n"
    ).defaults
    shadow_doc = title_document(genres=("Школа", "Комедия", "Романтика"))
    shadow_doc["in_favorites"] = 1
    copy = pickle.loads(pickle.dumps(rules))  # noqa: S301 - our own bytes, as the worker queue
    assert copy == rules
    assert Verdict.MATCH == run(response(), response(shadow_doc), copy).verdict


def test_empty_body_against_json_is_missing_not_unparseable() -> None:
    """A shadow that sends no body where the primary sent JSON lacks the whole document."""
    result = run(response({"id": 1}), response(raw=b""))
    assert [("", DiffKind.MISSING, {"id": 1})] == [
        (d.pointer, d.kind, d.primary) for d in result.differences
    ]
    extra = run(response(raw=b"", status=204), response({"id": 1}, status=204))
    assert [("", DiffKind.EXTRA, {"id": 1})] == [
        (d.pointer, d.kind, d.shadow) for d in extra.differences
    ]


def test_byte_order_mark_is_skipped() -> None:
    """A UTF-8 byte order mark before the JSON does not make it unparseable."""
    raw = orjson.dumps(title_document())
    assert Verdict.MATCH == run(response(raw=raw), response(raw=b"\xef\xbb\xbf" + raw)).verdict


def test_fifty_megabyte_body_is_compared() -> None:
    """A 50 MB JSON body is decoded, parsed and compared to a clear difference, not a skip."""
    big = "x" * (50 * 1024 * 1024)
    changed = big[:-1] + "y"
    result = run(response({"description": big}), response({"description": changed}))
    assert [("/description", DiffKind.VALUE)] == [(d.pointer, d.kind) for d in result.differences]
    shown = result.differences[0].shadow
    assert shown.endswith(f"… <{len(big) - 64 * 1024} more characters>")
    assert len(shown) < 70 * 1024


def test_large_missing_subtree_is_shown_as_its_size() -> None:
    """A missing object too large to carry is described by its size, not copied whole."""
    huge = {"items": ["x" * 1000] * 100}
    result = run(response({"a": 1, "huge": huge}), response({"a": 1}))
    size = len(orjson.dumps(huge))
    assert [("/huge", DiffKind.MISSING, f"<object of {size} bytes, too large to show>")] == [
        (d.pointer, d.kind, d.primary) for d in result.differences
    ]


def test_large_text_bodies_show_where_they_differ() -> None:
    """A long text body difference is shown from shortly before the first differing byte."""
    html = (("content-type", "text/html"),)
    a = b"<p>" + b"a" * 5_000_000 + b"</p>"
    b = a[:4_000_000] + b"B" + a[4_000_001:]
    result = run(response(raw=a, headers=html), response(raw=b, headers=html))
    diff = result.differences[0]
    assert ("(body, from byte 3999920)", DiffKind.TEXT) == (diff.label, diff.kind)
    assert diff.shadow.startswith("a" * 80 + "B")


def test_a_large_comparison_runs_no_garbage_collection() -> None:
    """Parsing and walking two large documents allocates thousands of containers; the cyclic
    collector (which would scan them again and again, for no cycle) waits until they are freed:
    at most the one collection that was due runs, after them. It is on again after."""
    titles = [title_document(9000 + n) for n in range(400)]
    changed = [dict(title, rating=1.0) for title in titles]
    primary, shadow = response({"list": titles}), response({"list": changed})
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(count)
    try:
        orjson.loads(primary.body)  # the same allocations, outside a comparison
        during_parse = len(collections)
        # Which generation the due collection is depends on how many ran before (in a full test
        # run, any): start from none, so that one is a young one, and accept any single one.
        gc.collect()
        collections.clear()
        result = run(primary, shadow)
    finally:
        gc.callbacks.remove(count)
    assert during_parse >= 5  # the check sees collections where they happen
    assert (Verdict.MISMATCH, 400, True, True) == (
        result.verdict,
        len(result.differences),
        len(collections) <= 1,
        gc.isenabled(),
    )
