"""Property-based fuzzing of everything that reads hostile input: rule files, response bodies,
request headers. The engine never raises anything unexpected, never hangs, and its properties hold.

Only public entry points are used: :func:`shadowproxy.rules.load_ruleset`,
:func:`shadowproxy.compare.comparator.compare`, and a real proxy for the headers.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import string
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from shadowproxy.compare.comparator import compare
from shadowproxy.model import CapturedRequest, CapturedResponse, Exchange, Verdict
from shadowproxy.rules import EndpointRules, RulesError, load_ruleset
from tests.conftest import StartProxy, StartUpstream

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- rule files -----------------------------------------------------------------------------------

RULE_KEYS = (
    "ignore", "critical", "unordered", "tolerance", "coerce", "equivalent", "normalize",
    "timestamps", "numbers", "headers", "status", "transform", "mirror", "sample", "redact",
)  # fmt: skip
WORDS = (
    "/list", "/list/*/id", "**/rating", "/**", "**", "*", "", "/a~1b", "/~2", "id", "key", "abs",
    "rel", "regex", "replace", "trim", "nfc", "lower", "number", "string", "missing", "null",
    "tolerance_s", "int_float_equal", "GET", "POST", "/v3/title/{id}", "{", "(", "[a-", "\\",
    "content-type", "x-anything", "move", "remove", "from", "to", "op", "path", "method", "query",
    "name", "match", "version", "endpoints", "defaults",
)  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.text(max_size=12),
)
keys = st.one_of(st.sampled_from(WORDS + RULE_KEYS), st.text(max_size=8))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)
pointers = st.one_of(
    st.sampled_from(("/list", "/list/*/id", "**/rating", "/**", "**", "*", "", "/a~1b", "/~2")),
    st.text(max_size=8).map(lambda t: "/" + t),
)
regexes = st.one_of(
    st.sampled_from(("^https?://[^/]+", "(", "[a-", "\\", "a{99999}", "")), st.text(max_size=6)
)
per_path = {
    "unordered": st.one_of(
        st.just({}), st.fixed_dictionaries({"key": st.sampled_from(("id", "", "*"))})
    ),
    "tolerance": st.one_of(
        st.fixed_dictionaries({"abs": st.floats()}), st.fixed_dictionaries({"rel": scalars})
    ),
    "coerce": st.sampled_from(("number", "string", "bool", "", None)),
    "equivalent": st.lists(st.one_of(st.sampled_from((None, "", "missing", 0, False)), scalars)),
    "normalize": st.one_of(
        st.fixed_dictionaries({"regex": regexes, "replace": st.text(max_size=4)}),
        st.fixed_dictionaries({"trim": st.booleans(), "nfc": scalars}),
        st.lists(st.fixed_dictionaries({"regex": regexes, "replace": scalars}), max_size=2),
    ),
    "timestamps": st.fixed_dictionaries({"tolerance_s": scalars}),
}
structured = {
    **{key: st.dictionaries(pointers, spec, max_size=3) for key, spec in per_path.items()},
    "ignore": st.lists(pointers, max_size=4),
    "critical": st.lists(pointers, max_size=4),
    "redact": st.lists(st.one_of(pointers, st.sampled_from(("password", "session"))), max_size=3),
    "numbers": st.dictionaries(st.sampled_from(("int_float_equal", "other")), scalars, max_size=2),
    "headers": st.lists(
        st.one_of(st.sampled_from(("content-type", "etag", "")), values), max_size=3
    ),
    "status": values,
    "transform": values,
    "mirror": st.one_of(st.booleans(), scalars),
    "sample": st.one_of(st.floats(-10, 200), scalars),
}
blocks = st.fixed_dictionaries(
    {}, optional={key: st.one_of(spec, spec, spec, values) for key, spec in structured.items()}
)
matches = st.fixed_dictionaries(
    {
        "path": st.one_of(
            st.sampled_from(("/v3/title", "/v3/title/{id}", "/**", "/a/*/b", "x")), scalars
        )
    },
    optional={
        "method": st.one_of(st.sampled_from(("GET", ["GET", "POST"], "get", "")), values),
        "query": st.one_of(
            st.dictionaries(st.text(max_size=4), st.one_of(st.just("*"), scalars)), values
        ),
        "headers": st.one_of(st.dictionaries(st.text(max_size=4), scalars), values),
    },
)
endpoints = st.builds(
    lambda block, match, name: {**block, "match": match, **({"name": name} if name else {})},
    blocks,
    matches,
    st.one_of(st.none(), st.text(max_size=10), st.integers()),
)
files = st.fixed_dictionaries(
    {"version": st.sampled_from([1] * 9 + [2, "1", None])},
    optional={"defaults": blocks, "endpoints": st.lists(endpoints, max_size=3)},
)
rule_files = st.one_of(files, files, files, values)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def check_rules_text(path: Path, data: bytes) -> str:
    """Load ``data`` as a rule file: ``loaded`` or ``refused``, anything else fails."""
    path.write_bytes(data)
    try:
        ruleset = load_ruleset(path)
    except RulesError as exc:
        return "refused" if str(exc) else "refused without a message"
    # Loaded: it must also be usable.
    for method, target in (("GET", "/v3/title/9174"), ("POST", "/"), ("DELETE", "/list")):
        ruleset.resolve(method, target, {"id": "1"}, {"content-type": "application/json"})
    return "loaded"


def test_random_rule_structures_load_or_raise_rules_error(scratch: Path) -> None:
    """Random YAML structures built from the rule vocabulary: RulesError or a usable ruleset."""
    outcomes: list[str] = []

    @FUZZ
    @given(rule_files)
    def check(document: Any) -> None:
        outcomes.append(check_rules_text(scratch / "rules.yaml", yaml.safe_dump(document).encode()))

    check()
    assert {"loaded", "refused"} == set(outcomes)  # the fuzzing reached both ends


def test_random_rule_text_loads_or_raises_rules_error(scratch: Path) -> None:
    """Arbitrary bytes and YAML-ish text (anchors, tags, tabs, invalid UTF-8) likewise."""
    yamlish = st.text(alphabet=string.printable + "&*!|>{}[]-:ёжΩ\t", max_size=200)

    @FUZZ
    @given(st.one_of(st.binary(max_size=200), yamlish.map(str.encode)))
    def check(data: bytes) -> None:
        assert check_rules_text(scratch / "raw.yaml", b"version: 1\n" + data) in {
            "loaded",
            "refused",
        }

    check()


# --- the comparator -------------------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=30,
)
RULES_FOR_EQUALITY = """\
version: 1
defaults:
  unordered: {"": {}, "/list": {key: id}, "**/tags": {}}
  tolerance: {"**/rating": {abs: 0.01}}
  equivalent: {"**/alt": [null, "", missing]}
  coerce: {"**/id": number}
  normalize: {"**/url": {regex: "^https?://[^/]+", replace: ""}}
  ignore: ["**/took_ms"]
"""


def exchange(primary: CapturedResponse, shadow: CapturedResponse) -> Exchange:
    request = CapturedRequest("GET", "/v3/title", "id=1", (), b"", 0.0)
    return Exchange("fuzz", "GET /v3/title", request, primary, shadow)


def response(
    body: bytes, headers: tuple[tuple[str, str], ...], status: int = 200
) -> CapturedResponse:
    return CapturedResponse(status=status, headers=headers, body=body, elapsed=0.01)


@pytest.fixture(scope="module")
def rule_sets(scratch: Path) -> list[EndpointRules]:
    path = scratch / "equality.yaml"
    path.write_text(RULES_FOR_EQUALITY)
    resolved = load_ruleset(path).resolve("GET", "/v3/title", {}, {})
    return [load_ruleset(None).resolve("GET", "/v3/title", {}, {}), resolved]


content_types = st.sampled_from(
    [None, "application/json", "application/json; charset=utf-8", "text/plain", "text/html",
     "application/problem+json", "application/octet-stream", "", "ja/son;;;"]
)  # fmt: skip
encodings = st.sampled_from([None, "gzip", "deflate", "br", "identity", "x-unknown", "gzip, br"])


def test_comparator_never_raises_on_arbitrary_bodies(rule_sets: list[EndpointRules]) -> None:
    """Any bytes, any claimed type and encoding, any statuses: a Comparison, never an exception."""

    @FUZZ
    @given(
        st.tuples(st.binary(max_size=300), content_types, encodings, st.integers(100, 599)),
        st.tuples(st.binary(max_size=300), content_types, encodings, st.integers(100, 599)),
        st.booleans(),
    )
    def check(
        a: tuple[bytes, str | None, str | None, int],
        b: tuple[bytes, str | None, str | None, int],
        strict: bool,
    ) -> None:
        sides = []
        for body, ctype, encoding, status in (a, b):
            headers = tuple(
                (name, value)
                for name, value in (("Content-Type", ctype), ("Content-Encoding", encoding))
                if value is not None
            )
            sides.append(response(body, headers, status))
        rules = rule_sets[0 if strict else 1]
        result = compare(exchange(*sides), rules, "fuzz")
        assert result.verdict in set(Verdict)
        assert (result.verdict is Verdict.MISMATCH) == bool(result.differences) or (
            result.verdict is Verdict.SHADOW_ERROR
        )

    check()


def encode(data: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(data)
    if encoding == "deflate":
        return zlib.compress(data)
    return data


def test_a_document_equals_itself_however_it_is_written(rule_sets: list[EndpointRules]) -> None:
    """The same JSON document, serialised differently (spacing, escaping, key order) and encoded
    differently (gzip, deflate, none), is a match with no differences, under any rules."""

    @FUZZ
    @given(
        json_values,
        st.sampled_from([None, 0, 2]),
        st.booleans(),
        st.sampled_from(["identity", "gzip", "deflate"]),
        st.booleans(),
    )
    def check(
        document: Any, indent: int | None, ascii_only: bool, encoding: str, strict: bool
    ) -> None:
        first = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
        second = json.dumps(
            document, indent=indent, ensure_ascii=ascii_only, sort_keys=True
        ).encode()
        headers = (("Content-Type", "application/json"),)
        primary = response(first, headers)
        shadow = response(encode(second, encoding), (*headers, ("Content-Encoding", encoding)))
        result = compare(exchange(primary, shadow), rule_sets[0 if strict else 1], "fuzz")
        assert (Verdict.MATCH, ()) == (result.verdict, result.differences)

    check()


# --- request headers through a real proxy ---------------------------------------------------------

TOKEN_CHARS = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
header_names = st.one_of(
    st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=20),
    st.sampled_from(
        ["Host", "Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "Expect", "TE",
         "Content-Encoding", "Accept-Encoding", "X-Forwarded-For", "X-Shadow-Request", "Cookie",
         "Authorization", "Keep-Alive", "Proxy-Connection", "Trailer", "Range"]
    ),
    st.binary(min_size=1, max_size=10).map(lambda b: b.decode("latin-1")),
)  # fmt: skip
header_values = st.one_of(
    st.text(alphabet=string.printable.replace("\r", "").replace("\n", ""), max_size=40),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    st.sampled_from(["chunked", "close", "keep-alive, X-Drop", "100-continue", "gzip", "0", "-1",
                     "websocket", "bytes=0-1", "h2c", "\t", " ", "a\x00b", "é", "日本"]),
)  # fmt: skip


def declares_unsent_body(headers: list[tuple[str, str]]) -> bool:
    """A request that announces a body this client never sends: no server can answer it before
    giving up on the body (that wait is the client's to end), so it is no case for this test."""
    for name, value in headers:
        key = name.strip().lower()
        if key == "transfer-encoding":
            return True
        if key == "content-length" and value.strip().isdigit() and int(value) > 0:
            return True
    return False


def raw_get(port: int, headers: list[tuple[str, str]]) -> bytes:
    """Send one GET with these header lines (bytes as given, latin-1/UTF-8) and read the answer."""
    lines = [b"GET /v3/title?id=1 HTTP/1.1", b"Host: a"]
    for name, value in headers:
        lines.append(name.encode("utf-8", "surrogateescape") + b": " + value.encode("utf-8"))
    request = b"\r\n".join(lines) + b"\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_arbitrary_request_headers_never_get_a_5xx_from_the_proxy(
    upstream: StartUpstream, proxy: StartProxy
) -> None:
    """Whatever the header names and values, the proxy answers: the primary's 200, or its own
    4xx for what it refuses; never a 5xx of its own, never a crash (the next request is served)."""

    async def ok(request: web.Request) -> web.Response:
        return web.Response(body=b'{"ok":true}', content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    backend = await upstream(app)
    running = await proxy(backend, backend, shadow_timeout=1.0)
    port = int(running.traffic_url.rsplit(":", 1)[1])
    answers: list[tuple[bytes, list[tuple[str, str]]]] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.tuples(header_names, header_values), max_size=6))
    def check(headers: list[tuple[str, str]]) -> None:
        assume(not declares_unsent_body(headers))
        answer = raw_get(port, headers)
        status = answer[9:12]
        answers.append((status, headers))
        assert answer.startswith(b"HTTP/1.")
        assert not status.startswith(b"5"), (answer[:300], headers)

    await asyncio.to_thread(check)
    statuses = {status for status, _ in answers}
    assert b"200" in statuses  # most requests went through
    assert await running.drain(10)
    assert b"200" == (await asyncio.to_thread(raw_get, port, []))[9:12]
