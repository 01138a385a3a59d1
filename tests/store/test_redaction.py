"""Redaction: secrets in headers, query strings and JSON bodies are masked before storage."""

from __future__ import annotations

import gzip
import pickle

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowproxy.model import CapturedResponse, Difference, DiffKind, Verdict
from shadowproxy.settings import Settings
from shadowproxy.store.content import DECODED_HEADER
from shadowproxy.store.redaction import REDACTED, RedactionPolicy, redact_comparison
from tests.factories import make_comparison, make_request, make_response

POLICY = RedactionPolicy.build(headers=["x-session"], query=["sig"])


def response_of(comparison_outcome: object) -> CapturedResponse:
    assert isinstance(comparison_outcome, CapturedResponse)
    return comparison_outcome


def test_secret_headers_are_masked_keeping_their_shape() -> None:
    """Auth scheme, cookie names and Set-Cookie attributes stay; the secret parts go."""
    request = make_request(
        headers=(
            ("Authorization", "Bearer abc.def.ghi"),
            ("Cookie", "sid=123; lang=ru"),
            ("X-Api-Key", "k-999"),
            ("X-Session", "zzz"),
            ("Accept", "application/json"),
            ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
        )
    )
    primary = make_response(
        headers=(
            ("Set-Cookie", "sid=123; Path=/; HttpOnly"),
            ("Location", "/next?token=t0k&page=2"),
        )
    )

    out = redact_comparison(make_comparison(request=request, primary=primary), POLICY)

    assert (
        ("Authorization", "Bearer [redacted]"),
        ("Cookie", "sid=[redacted]; lang=[redacted]"),
        ("X-Api-Key", REDACTED),
        ("X-Session", REDACTED),
        ("Accept", "application/json"),
        ("Proxy-Authorization", "Basic [redacted]"),
    ) == out.exchange.request.headers
    assert (
        ("Set-Cookie", "sid=[redacted]; Path=/; HttpOnly"),
        ("Location", "/next?token=[redacted]&page=2"),
    ) == response_of(out.exchange.primary).headers[:2]


def test_secret_query_parameters_are_masked() -> None:
    """Named parameters (any case, percent-encoded names too) are masked; the rest untouched."""
    request = make_request(query="id=9174&TOKEN=abc&api%5Fkey=k1&sig=s&filter=names&password")

    out = redact_comparison(make_comparison(request=request), POLICY)

    assert (
        "id=9174&TOKEN=[redacted]&api%5Fkey=[redacted]&sig=[redacted]&filter=names&password"
    ) == out.exchange.request.query


def test_json_body_fields_by_name_and_by_path() -> None:
    """Names match at any depth; paths match with * and **; a gzip'd body is stored decoded."""
    document = {
        "user": {"login": "neo", "password": "p1"},
        "list": [{"id": 1, "passport": "AB1"}, {"id": 2, "passport": "CD2"}],
        "deep": {"a": {"b": {"pin": "0000"}}},
        "pin": "keep",
    }
    primary = make_response(document, gzipped=True)

    out = redact_comparison(
        make_comparison(primary=primary), POLICY, body_paths=("/list/*/passport", "/deep/**/pin")
    )

    stored = response_of(out.exchange.primary)
    assert {
        "user": {"login": "neo", "password": REDACTED},
        "list": [{"id": 1, "passport": REDACTED}, {"id": 2, "passport": REDACTED}],
        "deep": {"a": {"b": {"pin": REDACTED}}},
        "pin": "keep",
    } == orjson.loads(stored.body)
    assert (DECODED_HEADER, "gzip") in stored.headers
    assert "content-encoding" not in {k.lower() for k, _ in stored.headers}


def test_a_body_without_secrets_is_left_as_it_was() -> None:
    """Nothing to mask in the body: the same bytes, still encoded."""
    primary = make_response({"id": 1}, gzipped=True)

    out = response_of(redact_comparison(make_comparison(primary=primary), POLICY).exchange.primary)

    assert (primary.body, ("content-encoding", "gzip")) == (out.body, out.headers[1])


def test_differences_at_secret_places_are_masked() -> None:
    """A difference at a secret path, or holding one inside its value, shows no secret."""
    diffs = (
        Difference("/user/password", "/user/password", DiffKind.VALUE, "p1", "p2"),
        Difference("/user", "/user", DiffKind.MISSING, {"login": "neo", "token": "t1"}, None),
        Difference(
            "/headers/set-cookie",
            "/headers/set-cookie",
            DiffKind.HEADER,
            "sid=1; Path=/",
            "sid=2; Path=/",
        ),
        Difference("/rating", "/rating", DiffKind.VALUE, 8.7, 8.69),
        Difference("", "", DiffKind.UNPARSEABLE, '{"password": "p9", "x": 1', None),
    )

    out = redact_comparison(make_comparison(differences=diffs), POLICY)

    assert [
        (REDACTED, REDACTED),
        ({"login": "neo", "token": REDACTED}, None),
        ("sid=[redacted]; Path=/", "sid=[redacted]; Path=/"),
        (8.7, 8.69),
        ('{"password": "[redacted]", "x": 1', None),
    ] == [(d.primary, d.shadow) for d in out.differences]


def test_hmac_keeps_equality_visible_without_the_secret() -> None:
    """With a key, equal secrets mask equal and different ones differently; no plain text."""
    policy = RedactionPolicy.build(hmac_key="k3y")
    diffs = (Difference("/token", "/token", DiffKind.VALUE, "same", "other"),)
    request = make_request(headers=(("authorization", "Bearer same"),))

    out = redact_comparison(make_comparison(differences=diffs, request=request), policy)

    [d] = out.differences
    masked_auth = out.exchange.request.headers[0][1]
    assert d.primary.startswith("hmac:")
    assert 21 == len(d.primary)
    assert d.primary != d.shadow
    assert "Bearer " + d.primary == masked_auth


def test_form_bodies_and_unparseable_json_are_masked() -> None:
    """A login form's password and a cut JSON body's token are masked too."""
    request = make_request(
        method="POST",
        body=b"user=neo&password=hunter2",
        headers=(("content-type", "application/x-www-form-urlencoded"),),
    )
    primary = make_response(body=b'{"access_token": "eyJ0", "list": [1, 2', gzipped=False)

    out = redact_comparison(make_comparison(request=request, primary=primary), POLICY)

    assert b"user=neo&password=[redacted]" == out.exchange.request.body
    assert b'{"access_token": "[redacted]", "list": [1, 2' == response_of(out.exchange.primary).body


def test_bodies_of_matches_are_not_parsed() -> None:
    """Only mismatches and shadow errors have bodies stored: others keep theirs (headers are
    still masked)."""
    comparison = make_comparison(verdict=Verdict.MATCH, primary=make_response({"password": "p"}))

    out = redact_comparison(comparison, POLICY)

    assert comparison.exchange.primary.body == response_of(out.exchange.primary).body  # type: ignore[union-attr]
    assert "Bearer [redacted]" == dict(out.exchange.request.headers)["authorization"]


def test_the_policy_comes_from_settings_and_pickles() -> None:
    """Settings extend the defaults; the policy crosses into comparator processes."""
    policy = RedactionPolicy.from_settings(
        Settings(
            redact_headers=("x-trace-secret",),
            redact_query=("sig",),
            redact_hmac_key="k",
            store_body_max=4096,
        )
    )

    assert {"authorization", "x-trace-secret"} <= policy.headers
    assert {"token", "sig"} <= policy.query
    assert 4096 == policy.body_max
    copy = pickle.loads(pickle.dumps(policy))  # noqa: S301 - our own bytes, as the pool does
    assert policy == copy
    assert policy.mask("x") == copy.mask("x")


@given(
    st.dictionaries(
        st.sampled_from(["password", "id", "name", "token"]),
        st.one_of(st.text(), st.integers(-(2**63), 2**63 - 1)),
        max_size=4,
    )
)
def test_redacting_twice_is_redacting_once(document: dict[str, object]) -> None:
    """Redaction is idempotent, so a comparison may safely pass through it again."""
    primary = make_response(document)
    comparison = make_comparison(primary=primary)

    once = redact_comparison(comparison, POLICY)

    assert once == redact_comparison(once, POLICY)


@pytest.mark.parametrize("encoded", [True, False])
def test_content_length_does_not_lie_after_masking(encoded: bool) -> None:
    """The stored body no longer matches the old Content-Length: the header is dropped."""
    raw = orjson.dumps({"password": "a-long-secret-value"})
    body = gzip.compress(raw) if encoded else raw
    headers = (("content-length", str(len(body))),) + (
        (("content-encoding", "gzip"),) if encoded else ()
    )
    primary = make_response(body=raw, gzipped=encoded, headers=headers)

    out = response_of(redact_comparison(make_comparison(primary=primary), POLICY).exchange.primary)

    assert "content-length" not in {k for k, _ in out.headers}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"user": {"Password": "p1"}}',  # the name in another case
        b'{"user": {"pass\\u0077ord": "p1"}}',  # the name spelt with an escape
    ],
)
def test_the_no_secret_shortcut_never_skips_a_secret(raw: bytes) -> None:
    """Bodies are scanned for secret names before being walked; a name in another case or
    written with a JSON escape still reaches the walk and is masked."""
    primary = make_response(body=raw, headers=(("Content-Type", "application/json"),))

    out = response_of(redact_comparison(make_comparison(primary=primary), POLICY).exchange.primary)

    assert REDACTED in orjson.loads(out.body)["user"].values()


CUT = RedactionPolicy.build(body_max=1024, body=["/user/*/pin"])
LONG_LIST = [{"id": i, "name": f"title {i}"} for i in range(200)]


@pytest.mark.parametrize("gzipped", [False, True])
def test_bodies_are_cut_to_what_the_store_keeps(gzipped: bool) -> None:
    """A body longer than the store keeps leaves redaction decoded and cut, marked truncated: a
    secret past the cut is not carried to the writer, its spool or the store."""
    document = {"list": LONG_LIST, "token": "t-after-the-cut"}
    raw = orjson.dumps(document)
    primary = make_response(document, gzipped=gzipped)

    out = response_of(redact_comparison(make_comparison(primary=primary), CUT).exchange.primary)

    assert raw[:1024] == out.body
    assert out.truncated
    names = {k.lower() for k, _ in out.headers}
    assert "content-encoding" not in names
    assert (DECODED_HEADER in names) == gzipped


def test_secrets_in_the_kept_part_are_masked_by_name_and_by_path() -> None:
    """A secret name in the part kept sends the whole body through the walk, then the cut."""
    document = {"user": {"neo": {"pin": "0000", "token": "t1"}}, "list": LONG_LIST}
    primary = make_response(document)

    out = response_of(redact_comparison(make_comparison(primary=primary), CUT).exchange.primary)

    masked = {"user": {"neo": {"pin": REDACTED, "token": REDACTED}}, "list": LONG_LIST}
    assert orjson.dumps(masked)[:1024] == out.body
    assert out.truncated


def test_short_bodies_and_undecodable_ones_are_not_cut() -> None:
    """Under the cap nothing changes; a body whose encoding cannot be removed stays whole (a cut
    compressed stream would decode to something nobody scanned)."""
    short = make_response({"id": 1})
    broken = make_response(
        body=b"\x1f\x8b" + bytes(range(256)) * 8,
        headers=(("content-type", "application/json"), ("content-encoding", "gzip")),
    )

    out = redact_comparison(make_comparison(primary=short, shadow=broken), CUT).exchange

    assert (short.body, False) == (
        response_of(out.primary).body,
        response_of(out.primary).truncated,
    )
    assert (broken.body, False) == (response_of(out.shadow).body, response_of(out.shadow).truncated)


def test_a_cut_request_body_is_masked_in_its_kept_part() -> None:
    """Request bodies are cut the same way; a form's password inside the cut is masked."""
    request = make_request(
        method="POST",
        body=b"password=hunter2&" + b"x=1&" * 1000,
        headers=(("content-type", "application/x-www-form-urlencoded"),),
    )

    out = redact_comparison(make_comparison(request=request), CUT).exchange.request

    assert 1024 + len("[redacted]") - len("hunter2") == len(out.body)
    assert out.body.startswith(b"password=[redacted]&x=1&")
