"""``shadowproxy report``: every format parses and carries the API's numbers; exit codes gate."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import pty
import select
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from shadowproxy import appkeys
from shadowproxy.admin.api import setup_api
from shadowproxy.cli import main
from shadowproxy.cli.report import Progress
from shadowproxy.store import open_store
from tests.report.traffic import SCRIPT, TITLE, fill
from tests.schema_check import errors


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """A SQLite store file holding the realistic traffic scenario."""
    url = f"sqlite:///{tmp_path / 'shadow.db'}"

    async def write() -> None:
        store = open_store(url)
        await store.aopen()
        await fill(store)
        await store.aclose()

    asyncio.run(write())
    return url


def _api(url: str, path: str) -> Any:
    """What the admin API answers for ``path`` over the same store."""

    async def ask() -> Any:
        store = open_store(url)
        await store.aopen()
        app = web.Application()
        app[appkeys.STORE] = store
        setup_api(app)
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server()
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(server.make_url(path)) as response,
            ):
                return await response.json()
        finally:
            await server.close()
            await store.aclose()

    return asyncio.run(ask())


def _export(url: str, tmp_path: Path, fmt: str, *extra: str) -> tuple[int, bytes]:
    out = tmp_path / f"report.{fmt}"
    code = main(
        ["report", "--store", url, "--since", "24h", "--format", fmt, "-o", str(out), *extra]
    )
    return code, out.read_bytes()


def _expected(url: str) -> dict[str, tuple[int, int, int]]:
    summary = _api(url, "/api/v1/summary?since=24h")
    return {
        item["endpoint"]: (item["compared"], item["mismatches"], item["shadow_errors"])
        for item in summary["endpoints"]
    }


def test_json_carries_the_api_numbers(store_url: str, tmp_path: Path) -> None:
    """Counts per endpoint and the readiness verdicts equal the API's for the same window."""
    code, data = _export(store_url, tmp_path, "json")
    document = json.loads(data)
    readiness = _api(store_url, "/api/v1/readiness?since=24h")
    assert 0 == code
    assert _expected(store_url) == {
        e["endpoint"]: (e["compared"], e["mismatches"], e["shadow_errors"])
        for e in document["endpoints"]
    }
    assert {e["endpoint"]: e["passed"] for e in readiness["endpoints"]} == {
        e["endpoint"]: e["readiness"]["passed"] for e in document["endpoints"]
    }


def test_csv_carries_the_api_numbers(store_url: str, tmp_path: Path) -> None:
    """One CSV row per endpoint with the API's counts."""
    _, data = _export(store_url, tmp_path, "csv")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert _expected(store_url) == {
        r["endpoint"]: (int(r["compared"]), int(r["mismatches"]), int(r["shadow_errors"]))
        for r in rows
    }


def test_junit_has_a_case_per_endpoint(store_url: str, tmp_path: Path) -> None:
    """One test case per endpoint; only the ready one has no <failure>."""
    _, data = _export(store_url, tmp_path, "junit")
    root = ET.fromstring(data)  # noqa: S314 - our own output, parsed to check it
    cases = {case.get("name"): case.find("failure") is None for case in root.iter("testcase")}
    assert {TITLE: False, "schedule": False, "titles.list": False, "titles.search": True} == cases


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_and_markdown_carry_the_numbers(store_url: str, tmp_path: Path) -> None:
    """The HTML readiness table and the Markdown table show each endpoint's compared count;
    the payload in the stored traffic is text in the HTML, never a tag."""
    _, html = _export(store_url, tmp_path, "html")
    parser = _Text()
    parser.feed(html.decode("utf-8"))
    text = " ".join(" ".join(parser.text).split())
    _, markdown = _export(store_url, tmp_path, "md")
    for endpoint, (compared, _, _) in _expected(store_url).items():
        assert f"{endpoint} PASS {compared}" in text or f"{endpoint} FAIL {compared}" in text
        assert f"| {endpoint} | {compared} |" in markdown.decode("utf-8")
    assert SCRIPT in text
    assert {"script", "img"}.isdisjoint(parser.tags)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ([], 0),  # no gate asked: the report was written
        (["--fail-over", "0.1%"], 1),  # three endpoints are not ready
        (["--fail-over", "0.1%", "--endpoint", "titles.search"], 0),
        (["--fail-over", "3%", "--endpoint", "titles.list"], 0),
        (["--fail-over", "3%", "--endpoint", "titles.list", "--min-samples", "1000"], 1),
    ],
)
def test_fail_over_exit_codes(
    store_url: str, tmp_path: Path, extra: list[str], expected: int
) -> None:
    """--fail-over makes the exit status the gate's verdict; the report is written either way."""
    code, data = _export(store_url, tmp_path, "json", *extra)
    assert expected == code
    assert "shadowproxy.report/1" == json.loads(data)["schema"]


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("bogus://nowhere", "unknown store"),
        ("sqlite:////nonexistent/dir/shadow.db", "no such file"),
    ],
)
def test_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], store: str, message: str
) -> None:
    """A bad or missing store is exit status 2 with one line on stderr, and no output file."""
    out = tmp_path / "r.html"
    code = main(["report", "--store", store, "-o", str(out), "--fail-over", "1%"])
    assert (2, False) == (code, out.exists())
    assert message in capsys.readouterr().err


def test_unreadable_store_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file that is not a database is an error, not an empty passing report."""
    bogus = tmp_path / "not.db"
    bogus.write_bytes(b"definitely not SQLite " * 50)
    assert 2 == main(["report", "--store", f"sqlite:///{bogus}"])
    assert "not a database" in capsys.readouterr().err


def test_bad_window_exits_2(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A window that does not parse is refused before the store is read."""
    assert 2 == main(["report", "--store", store_url, "--since", "last tuesday"])
    assert "--since/--until" in capsys.readouterr().err


def test_subprocess_exit_code_and_stdout(store_url: str) -> None:
    """Run as a real command: Markdown on stdout, the gate's status as exit code."""
    import subprocess

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "shadowproxy",
            "report",
            "--store",
            store_url,
            "--format",
            "md",
            "--fail-over",
            "0.1%",
        ],
        capture_output=True,
        check=False,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert 1 == result.returncode
    assert result.stdout.decode().startswith("## ❌ shadowproxy readiness: FAIL")


def _read_tty(fd: int, *, until: str) -> str:
    """What the terminal received, up to ``until``: a pty passes writes on asynchronously."""
    received = b""
    while not received.decode("utf-8", "ignore").endswith(until):
        ready, _, _ = select.select([fd], [], [], 5.0)
        if not ready:
            break
        received += os.read(fd, 4096)
    return received.decode("utf-8")


def test_progress_bar_on_a_terminal() -> None:
    """On a TTY the bar shows steps and is erased at the end; off a TTY nothing is written."""
    leader, follower = pty.openpty()
    try:
        with os.fdopen(follower, "w", encoding="utf-8", closefd=False) as tty:
            progress = Progress(tty, delay=0.0)
            progress.update(3, 6)
            progress.clear()
        written = _read_tty(leader, until="\r\x1b[K")
    finally:
        os.close(leader)
        os.close(follower)
    assert "report [████████████░░░░░░░░░░░░] 3/6 steps" in written
    assert written.endswith("\r\x1b[K")
    quiet = io.StringIO()
    Progress(quiet, delay=0.0).update(1, 2)
    assert "" == quiet.getvalue()


def test_store_from_the_environment(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --store, SHADOWPROXY_STORE names the store, as for `shadowproxy run`."""
    monkeypatch.setenv("SHADOWPROXY_STORE", store_url)
    out = tmp_path / "env.json"
    assert 0 == main(["report", "--format", "json", "-o", str(out)])
    assert 521 == json.loads(out.read_bytes())["totals"]["compared"]


def test_the_json_report_is_what_its_json_schema_says(store_url: str, tmp_path: Path) -> None:
    """``--json-schema`` writes a standalone JSON Schema; a report over real traffic meets it
    with no field left undescribed, and one with a field of the wrong type does not."""
    schema_file = tmp_path / "report.schema.json"
    assert 0 == main(["report", "--json-schema", "-o", str(schema_file)])
    schema = json.loads(schema_file.read_text())
    _, data = _export(store_url, tmp_path, "json", "--examples", "20")
    report = json.loads(data)

    assert "https://json-schema.org/draft/2020-12/schema" == schema["$schema"]
    assert [] == errors(report, schema, schema, closed=True)
    report["endpoints"][0]["readiness"]["checks"][0]["passed"] = "yes"
    assert ["/endpoints/0/readiness/checks/0/passed: not ['boolean']"] == errors(
        report, schema, schema, closed=True
    )
