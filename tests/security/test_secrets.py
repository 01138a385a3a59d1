"""Planted secrets through a real ``shadowproxy run`` (debug logging): none reaches the SQLite
file or its WAL, the log, or any report export.

The secrets ride in Authorization, Cookie, X-Api-Key, ``?token=``, Set-Cookie and a JSON field
named in the rules' ``redact:`` list; the backends disagree, so every exchange is stored in full.
A canary planted beside them (no secret) is found in the same places, so the scan can fail.
tests/store/test_secrets.py scans the store layer alone; this goes through the whole product.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import StartUpstream
from tests.reliability.process import ProxyProcess, proxy_process

SECRETS = {
    "authorization": "PLANTauthZ81kq",
    "cookie": "PLANTcookieM27x",
    "api_key": "PLANTapikeyV33w",
    "query_token": "PLANTqueryT44n",
    "set_cookie": "PLANTsetckS55p",
    "passport": "PLANTpasspP66r",
    "admin_token": "PLANTadminA77t",
}
CANARY = "CANARYvisible9174"
RULES = """\
version: 1
endpoints:
  - name: user.profile
    match: {method: GET, path: /v1/profile}
    redact: [passport]
  - name: user.broken
    match: {method: GET, path: /v1/broken}
"""


def needles(secret: str) -> list[bytes]:
    """The secret as bytes, percent-free, and as it would appear inside base64 (3 alignments)."""
    raw = secret.encode()
    found = [raw]
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw)
        found.append(encoded[4 * -(-pad // 3) : 4 * ((pad + len(raw)) // 3)])
    return found


def leaks(blob: bytes) -> set[str]:
    return {name for name, secret in SECRETS.items() if any(n in blob for n in needles(secret))}


def backend(version: int) -> web.Application:
    """The profile endpoint, echoing nothing of the request; different per side (mismatch)."""

    async def profile(request: web.Request) -> web.Response:
        response = web.json_response(
            {
                "id": version,
                # The canary differs as a field name and as a value, so every export shows it.
                CANARY: version,
                "name": f"{CANARY}-{version}",
                # The secret differs too: a difference's values must be redacted as well.
                "passport": f"{SECRETS['passport']}-{version}",
                "documents": [{"passport": SECRETS["passport"]}],
            }
        )
        response.headers.add("Set-Cookie", f"sid={SECRETS['set_cookie']}; Path=/; HttpOnly")
        return response

    async def broken(request: web.Request) -> web.StreamResponse:
        # Dies without answering: the proxy logs the failure (at debug) with the request target.
        assert request.transport is not None
        request.transport.abort()
        return web.Response()

    app = web.Application()
    app.router.add_get("/v1/profile", profile)
    app.router.add_get("/v1/broken", broken)
    return app


async def send_traffic(running: ProxyProcess) -> None:
    headers = {
        "Authorization": f"Bearer {SECRETS['authorization']}",
        "Cookie": f"session={SECRETS['cookie']}; theme=dark",
        "X-Api-Key": SECRETS["api_key"],
    }
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        for path in ("/v1/profile", "/v1/profile", "/v1/broken"):
            url = f"{running.traffic_url}{path}?id=1&token={SECRETS['query_token']}"
            async with client.get(url, headers=headers) as response:
                await response.read()
        # The admin token, right and wrong, at the admin listener.
        for token in (SECRETS["admin_token"], SECRETS["admin_token"] + "x"):
            async with client.get(
                running.admin_url + "/api/v1/summary",
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                await response.read()


def stored_records(db: Path) -> int:
    """Mismatch records in the SQLite store so far (0 before it exists)."""
    if not db.exists():
        return 0
    with (
        contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn,
        contextlib.suppress(sqlite3.OperationalError),  # the schema is not there yet
    ):
        return int(conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])
    return 0


async def wait_for_records(db: Path, count: int, timeout: float = 30.0) -> None:
    """Poll the SQLite store until ``count`` mismatch records are in it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while stored_records(db) < count:
        if loop.time() > deadline:
            raise TimeoutError(f"{count} records never arrived in {db}")
        await asyncio.sleep(0.1)


def store_files(directory: Path) -> dict[str, bytes]:
    """The SQLite file and its companions (-wal, -shm), by name."""
    return {p.name: p.read_bytes() for p in directory.glob("store.db*")}


def export(db: Path, fmt: str) -> bytes:
    result = subprocess.run(
        [sys.executable, "-m", "shadowproxy", "report", "--store", f"sqlite:///{db}",
         "--format", fmt, "--since", "1h"],
        capture_output=True, check=False, timeout=60,
    )  # fmt: skip
    assert 0 == result.returncode, result.stderr.decode()
    return result.stdout


@pytest.mark.timeout(120)
async def test_planted_secrets_reach_no_stored_byte_no_log_line_and_no_report(
    upstream: StartUpstream, tmp_path: Path
) -> None:
    """Everything the product writes is scanned; only the canary is found."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    db = tmp_path / "store.db"
    async with proxy_process(
        tmp_path,
        await upstream(backend(1)),
        await upstream(backend(2)),
        "--store", f"sqlite:///{db}",
        "--rules", str(rules),
        "--log-level", "debug",
        "--admin-token", SECRETS["admin_token"],
    ) as running:  # fmt: skip
        await send_traffic(running)
        await wait_for_records(db, 2)
        # While running: the WAL holds the latest writes.
        live = store_files(tmp_path)
        running.terminate()
        assert 0 == await running.wait(20)
    files = store_files(tmp_path)
    reports = {fmt: export(db, fmt) for fmt in ("html", "json", "csv", "md", "junit")}

    found = {
        **{f"live {name}": leaks(blob) for name, blob in live.items()},
        **{name: leaks(blob) for name, blob in files.items()},
        **{f"report {fmt}": leaks(blob) for fmt, blob in reports.items()},
    }
    assert {name: set() for name in found} == found
    assert "store.db-wal" in live
    # The canary is there: the scan reads real content.
    stored = files["store.db"] + live.get("store.db-wal", b"")
    assert any(needle in stored for needle in needles(CANARY))
    assert set(reports) == {
        fmt for fmt, blob in reports.items() if any(n in blob for n in needles(CANARY))
    }


@pytest.mark.timeout(120)
async def test_debug_log_holds_no_secret(upstream: StartUpstream, tmp_path: Path) -> None:
    """At debug level the proxy's log names requests and failures, never a secret in them."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    async with proxy_process(
        tmp_path,
        await upstream(backend(1)),
        await upstream(backend(2)),
        "--store", f"sqlite:///{tmp_path / 'store.db'}",
        "--rules", str(rules),
        "--log-level", "debug",
        "--admin-token", SECRETS["admin_token"],
    ) as running:  # fmt: skip
        await send_traffic(running)
        running.terminate()
        assert 0 == await running.wait(20)
        log = running.log_bytes()
    assert b"DEBUG" in log  # debug logging was on
    assert set() == leaks(log)
