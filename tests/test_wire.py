"""The JSON form of an exchange: lossless both ways, and strict about what it reads."""

from __future__ import annotations

import orjson
import pytest

from shadowproxy.model import BackendError, ErrorKind
from shadowproxy.wire import WireError, exchange_document, exchange_from_document
from tests.factories import make_comparison


def test_round_trip_is_lossless() -> None:
    exchange = make_comparison().exchange
    assert exchange == exchange_from_document(
        orjson.loads(orjson.dumps(exchange_document(exchange)))
    )


def test_round_trip_keeps_backend_errors() -> None:
    exchange = make_comparison(shadow=BackendError(ErrorKind.RESET, 0.25, "reset by peer")).exchange
    doc = orjson.loads(orjson.dumps(exchange_document(exchange)))
    assert exchange.shadow == exchange_from_document(doc).shadow


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d.pop("request"), "exchange: missing 'request'"),
        (lambda d: d["primary"].update(status="200"), "primary: 'status' has the wrong type (str)"),
        (lambda d: d["request"].update(body="%%%"), "request: 'body' is not base64"),
        (
            lambda d: d["shadow"].update(error="gone", detail="", elapsed=1),
            "shadow: unknown error kind 'gone'",
        ),
    ],
)
def test_damaged_documents_are_refused_by_name(damage: object, message: str) -> None:
    doc = orjson.loads(orjson.dumps(exchange_document(make_comparison().exchange)))
    damage(doc)  # type: ignore[operator]
    with pytest.raises(WireError) as caught:
        exchange_from_document(doc)
    assert message == str(caught.value)
