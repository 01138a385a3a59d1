"""The stream entry codec: lossless, versioned, and strict about what it reads."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadowproxy.model import BackendError, CapturedResponse, ErrorKind, Exchange
from shadowproxy.queue import (
    FORMAT,
    QueueCodecError,
    QueuedExchange,
    decode_exchange,
    encode_exchange,
)
from tests.factories import make_comparison, make_request, make_response
from tests.queue.traffic import exchanges


def _as_stored(fields: dict[str, bytes]) -> dict[bytes, bytes]:
    """The fields as Redis hands them back: byte keys."""
    return {key.encode(): value for key, value in fields.items()}


@pytest.mark.parametrize("exchange", exchanges(3), ids=["mismatch", "match", "shadow_error"])
def test_round_trip_keeps_every_field(exchange: Exchange) -> None:
    """Request, both outcomes (gzip'd bytes, errors) and the proxy's ruleset version survive."""
    decoded = decode_exchange(_as_stored(encode_exchange(exchange, "r1a2b3c")))
    assert QueuedExchange(exchange, "r1a2b3c") == decoded


def test_binary_bodies_and_truncation_survive() -> None:
    """Bytes that are not UTF-8 travel as base64; the truncated flag and error detail stay."""
    body = bytes(range(256)) * 4
    exchange = make_comparison(
        request=make_request(method="POST", body=b'\x00\xff{"password": 1}'),
        primary=CapturedResponse(200, (("content-type", "image/png"),), body, 0.1, truncated=True),
        shadow=BackendError(ErrorKind.RESET, 0.2, "ConnectionResetError: peer reset"),
    ).exchange
    assert exchange == decode_exchange(_as_stored(encode_exchange(exchange, ""))).exchange


@given(
    body=st.binary(max_size=512),
    header=st.text(max_size=40),
    status=st.integers(100, 599),
)
def test_any_body_and_header_round_trip(body: bytes, header: str, status: int) -> None:
    """Any body bytes and any header text (Cyrillic, control characters) come back unchanged."""
    exchange = make_comparison(
        primary=make_response(body=body, status=status, headers=(("x-note", header),)),
    ).exchange
    assert exchange == decode_exchange(_as_stored(encode_exchange(exchange, "v"))).exchange


def test_entry_names_its_format_version() -> None:
    """Every entry carries the format version, so a worker can refuse a newer one."""
    assert FORMAT.encode() == encode_exchange(exchanges(1)[0], "v")["v"]


def test_newer_format_is_refused_by_name() -> None:
    """An entry from a newer proxy is an error that names both versions, not a guess."""
    fields = _as_stored(encode_exchange(exchanges(1)[0], "v"))
    fields[b"v"] = b"2"
    with pytest.raises(QueueCodecError, match="version '2'; this worker reads version 1"):
        decode_exchange(fields)


def _tampered(path: tuple[str, ...], value: object) -> dict[bytes, bytes]:
    fields = _as_stored(encode_exchange(exchanges(1)[0], "v"))
    doc = orjson.loads(fields[b"exchange"])
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    fields[b"exchange"] = orjson.dumps(doc)
    return fields


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("id",), KeyError, "exchange: missing 'id'"),
        (("primary", "status"), True, "primary: 'status' has the wrong type"),
        (("primary", "status"), "200", "primary: 'status' has the wrong type"),
        (("request", "body"), "not base64!", "request: 'body' is not base64"),
        (("request", "headers"), [["host"]], "request: headers must be"),
        (("shadow", "error"), "melted", "shadow: unknown error kind 'melted'"),
    ],
)
def test_malformed_entries_are_refused_with_the_reason(
    path: tuple[str, ...], value: object, message: str
) -> None:
    """A corrupted or hand-written entry is a QueueCodecError saying what is wrong."""
    with pytest.raises(QueueCodecError, match=message):
        decode_exchange(_tampered(path, value))


@pytest.mark.parametrize(
    "fields",
    [{}, {b"v": b"1"}, {b"v": b"1", b"exchange": b"{nope"}, {b"v": b"1", b"exchange": b"[1]"}],
    ids=["empty", "no-exchange", "not-json", "not-an-object"],
)
def test_garbage_is_refused(fields: dict[bytes, bytes]) -> None:
    """Anything that is not an encoded exchange raises QueueCodecError, never something else."""
    with pytest.raises(QueueCodecError):
        decode_exchange(fields)


def test_unencodable_text_is_a_codec_error() -> None:
    """Text JSON cannot hold (a lone surrogate) is refused when encoding, by exchange id."""
    exchange = make_comparison(request=make_request(path="/titles/\udcff")).exchange
    with pytest.raises(QueueCodecError, match=exchange.id):
        encode_exchange(exchange, "v")
