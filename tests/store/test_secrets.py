"""Planted secrets: traffic full of credentials goes through redaction, the writer and the store;
then every stored byte is scanned for them (the SQLite file with its WAL, the spool, every Mongo
collection). The same run without redaction finds them, so the scan can fail."""

from __future__ import annotations

import base64
from pathlib import Path

import bson
import orjson
import pytest
from pymongo import AsyncMongoClient

from shadowproxy.model import Comparison, Difference, DiffKind, Verdict
from shadowproxy.store import open_store
from shadowproxy.store.redaction import RedactionPolicy, redact_comparison
from shadowproxy.store.writer import StoreWriter
from tests.factories import make_comparison, make_request, make_response
from tests.store.conftest import StoreFactory

SECRETS = {
    "auth": "PLANTauthQ9f3k2x",
    "cookie": "PLANTcookieW71xq",
    "apikey": "PLANTapikeyE55zz",
    "query": "PLANTqueryR3j3jj",
    "password": "PLANTpassT8u8u8",
    "setcookie": "PLANTsetckY0p0p",
    "access": "PLANTaccessU2k2k",
    "passport": "PLANTpasspI6t6t",
    "passport2": "PLANTpasspO4r4r",
}
RULE_PATHS = ("/user/passport",)


def needles(secret: str) -> list[bytes]:
    """The secret as raw bytes and as it would look inside base64 at any of the 3 alignments."""
    raw = secret.encode()
    found = [raw]
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw)
        first_group = -(-pad // 3)
        last_group = (pad + len(raw)) // 3
        found.append(encoded[4 * first_group : 4 * last_group])
    return found


def leaks(blob: bytes) -> set[str]:
    return {name for name, secret in SECRETS.items() if any(n in blob for n in needles(secret))}


def planted_traffic() -> list[Comparison]:
    s = SECRETS
    request = make_request(
        method="POST",
        query=f"id=9174&token={s['query']}",
        headers=(
            ("authorization", f"Bearer {s['auth']}"),
            ("cookie", f"sid={s['cookie']}"),
            ("x-api-key", s["apikey"]),
            ("content-type", "application/json"),
        ),
        body=orjson.dumps({"login": "neo", "password": s["password"]}),
    )
    primary = make_response(
        {"id": 9174, "access_token": s["access"], "user": {"passport": s["passport"]}},
        gzipped=True,
        headers=(
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
            ("set-cookie", f"sid={s['setcookie']}; Path=/"),
        ),
    )
    shadow = make_response(
        {"id": 9174, "access_token": s["access"], "user": {"passport": s["passport2"]}}
    )
    diffs = (
        Difference(
            "/user/passport", "/user/passport", DiffKind.VALUE, s["passport"], s["passport2"]
        ),
        Difference(
            "/headers/set-cookie",
            "/headers/set-cookie",
            DiffKind.HEADER,
            f"sid={s['setcookie']}; Path=/",
            None,
        ),
        Difference("/user", "/user", DiffKind.VALUE, {"passport": s["passport"]}, {}),
    )
    return [
        make_comparison(
            verdict=Verdict.MISMATCH,
            request=request,
            primary=primary,
            shadow=shadow,
            differences=diffs,
        ),
        make_comparison(verdict=Verdict.SHADOW_ERROR, request=request, primary=primary),
        make_comparison(verdict=Verdict.MATCH, request=request, primary=primary, shadow=primary),
    ]


NO_REDACTION = RedactionPolicy(headers=frozenset(), query=frozenset(), body=())


async def store_traffic(store_url: str, spool: Path, policy: RedactionPolicy) -> StoreWriter:
    store = open_store(store_url)
    writer = StoreWriter(store, flush_interval=0.05, spool_dir=spool)
    await writer.start()
    for comparison in planted_traffic():
        writer.submit(
            redact_comparison(comparison, policy, () if policy is NO_REDACTION else RULE_PATHS)
        )
    await writer.aclose()
    await store.aclose()
    return writer


def files_under(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())


@pytest.mark.parametrize(
    ("policy", "expect_leaks"), [(RedactionPolicy(), False), (NO_REDACTION, True)]
)
async def test_sqlite_file_wal_and_spool_hold_no_secret(
    tmp_path: Path, policy: RedactionPolicy, expect_leaks: bool
) -> None:
    """Every byte of the SQLite file, its WAL (while open) and the spool is free of secrets."""
    store = open_store(f"sqlite:///{tmp_path}/data/s.db")
    await store.aopen()
    writer = StoreWriter(store, flush_interval=0.05, spool_dir=tmp_path / "spool")
    await writer.start()
    for comparison in planted_traffic():
        writer.submit(
            redact_comparison(comparison, policy, () if policy is NO_REDACTION else RULE_PATHS)
        )
    await writer.aclose()
    assert (tmp_path / "data" / "s.db-wal").stat().st_size > 0
    while_open = leaks(files_under(tmp_path))
    page = await store.mismatches()
    await store.aclose()
    after_close = leaks(files_under(tmp_path))

    assert 2 == len(page.items)
    if expect_leaks:
        assert {"auth", "cookie", "password", "passport"} <= while_open | after_close
    else:
        assert set() == while_open | after_close


@pytest.mark.parametrize(
    ("policy", "expect_leaks"), [(RedactionPolicy(), False), (NO_REDACTION, True)]
)
async def test_no_mongo_collection_holds_a_secret(
    mongo_url: str, tmp_path: Path, policy: RedactionPolicy, expect_leaks: bool
) -> None:
    """Every document of every collection, dumped as BSON, is free of secrets."""
    await store_traffic(mongo_url, tmp_path / "spool", policy)

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url)
    db = client.get_default_database()
    dump = b""
    names = await db.list_collection_names()
    for name in names:
        async for doc in db[name].find():
            dump += bson.encode(doc)
    await client.close()

    assert {"records", "groups", "counters", "seen"} <= set(names)
    found = leaks(dump) | leaks(files_under(tmp_path))
    if expect_leaks:
        assert {"auth", "cookie", "password", "passport"} <= found
    else:
        assert set() == found


async def test_stored_records_read_back_redacted(make_store: StoreFactory) -> None:
    """Through the API's view too: the stored record shows masks where the secrets were."""
    store = make_store()
    await store.aopen()
    [mismatch, *_] = planted_traffic()
    await store.write([redact_comparison(mismatch, RedactionPolicy(), RULE_PATHS)])

    record = await store.mismatch(mismatch.exchange.id)

    assert record is not None
    assert "token=[redacted]" in record.target
    assert ("authorization", "Bearer [redacted]") in record.request_headers
    assert {"passport": "[redacted]"} == orjson.loads(record.primary.body)["user"]
    assert ("[redacted]", "[redacted]") == (
        record.differences[0].primary,
        record.differences[0].shadow,
    )
    assert set() == leaks(repr(record).encode())
