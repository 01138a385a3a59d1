"""Fidelity against a third-party server: httpbin as primary and as shadow.

Through the proxy, each response equals httpbin's direct answer byte for byte (status, body,
headers less hop-by-hop and Date), over JSON, gzip, deflate, brotli, chunked streams, bytes, ranges,
redirects, cookies, status codes, HEAD, delays and httpbin's largest bodies. And two identical
httpbins compare as zero mismatches once ``httpbin.rules.yaml`` ignores what httpbin legitimately
varies (its own address, the shadow marker header it echoes, random UUIDs).

httpbin is a test-only dependency, installed without its pins (they would downgrade playwright):
``pip install --no-deps httpbin==0.10.4 && pip install flask brotlicffi decorator six werkzeug``.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from shadowproxy.compare.comparator import compare
from shadowproxy.model import CapturedRequest, CapturedResponse, Exchange, Verdict
from shadowproxy.proxy.headers import HOP_BY_HOP
from shadowproxy.rules import load_ruleset
from tests.conftest import StartProxy
from tests.reliability.conftest import RecordFigure
from tests.reliability.faults import metrics_of, sample
from tests.servers import free_port

needs_httpbin = pytest.mark.skipif(
    importlib.util.find_spec("httpbin") is None,
    reason="httpbin not installed: pip install --no-deps httpbin==0.10.4 && "
    "pip install flask brotlicffi decorator six werkzeug",
)

RULES = Path(__file__).with_name("httpbin.rules.yaml")

REQUESTS: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "/get?show_env=0&a=1&b=%D0%BA", {}),
    ("GET", "/json", {}),
    ("GET", "/html", {}),
    ("GET", "/xml", {}),
    ("GET", "/robots.txt", {}),
    ("GET", "/headers", {"X-Custom": "kept"}),
    ("GET", "/user-agent", {}),
    ("GET", "/gzip", {}),
    ("GET", "/deflate", {}),
    ("GET", "/brotli", {}),
    ("GET", "/encoding/utf8", {}),
    ("GET", "/stream/5", {}),
    ("GET", "/stream-bytes/65536?seed=3&chunk_size=4096", {}),
    ("GET", "/bytes/102400?seed=7", {}),
    ("GET", "/range/4096", {"Range": "bytes=100-1999"}),
    ("GET", "/range/4096", {}),
    ("GET", "/base64/SFRUUEJJTiBpcyBhd2Vzb21l", {}),
    ("GET", "/image/png", {}),
    ("GET", "/image/svg", {}),
    ("GET", "/redirect/3", {}),
    ("GET", "/relative-redirect/2", {}),
    ("GET", "/absolute-redirect/2", {}),
    ("GET", "/redirect-to?url=%2Fget&status_code=307", {}),
    ("GET", "/cookies/set?theme=dark&lang=ru", {}),
    ("GET", "/cookies", {"Cookie": "theme=dark; lang=ru"}),
    ("GET", "/etag/abc", {"If-None-Match": '"abc"'}),
    ("GET", "/cache/60", {}),
    ("GET", "/response-headers?X-Test=1&X-Test=2", {}),
    ("GET", "/status/200", {}),
    ("GET", "/status/201", {}),
    ("GET", "/status/204", {}),
    ("GET", "/status/304", {}),
    ("GET", "/status/400", {}),
    ("GET", "/status/404", {}),
    ("GET", "/status/418", {}),
    ("GET", "/status/500", {}),
    ("GET", "/status/503", {}),
    ("HEAD", "/get", {}),
    ("HEAD", "/bytes/1024?seed=1", {}),
    ("OPTIONS", "/get", {}),
    ("GET", "/delay/1", {}),
    ("GET", "/drip?duration=0.5&numbytes=5&code=200&delay=0", {}),
]
ECHOES_THE_BACKEND = ("/get", "/headers", "/gzip", "/deflate", "/brotli", "/stream/", "/delay/")
"""Endpoints whose body echoes the request, Host included: they are compared under the rules."""


def _start(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "httpbin.core", "--host", "127.0.0.1", "--port", str(port)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("httpbin exited at start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("httpbin did not start")


@pytest.fixture(scope="module")
def httpbins() -> Iterator[tuple[str, str]]:
    """Two httpbin processes: (primary URL, shadow URL). Stopped by PID afterwards."""
    ports = free_port(), free_port()
    processes = [_start(port) for port in ports]
    try:
        yield f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}"
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


async def fetch(
    client: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str]
) -> tuple[int, bytes, list[tuple[str, str]]]:
    async with client.request(method, url, headers=headers, allow_redirects=False) as response:
        body = await response.read()
        named = {
            token.strip().lower()
            for value in response.headers.getall("Connection", [])
            for token in value.split(",")
        }
        kept = [
            (k.lower(), v)
            for k, v in response.headers.items()
            if k.lower() not in HOP_BY_HOP | named | {"date"}
        ]
        return response.status, body, kept


@needs_httpbin
async def test_responses_through_the_proxy_equal_httpbins_own(
    httpbins: tuple[str, str],
    proxy: StartProxy,
    client: aiohttp.ClientSession,
    record_figure: RecordFigure,
) -> None:
    """Status, body bytes and headers (less hop-by-hop and Date) are httpbin's, for every
    endpoint. The direct request carries the X-Forwarded-* fields the proxy adds, so endpoints
    that echo the request echo the same thing."""
    primary, shadow = httpbins
    running = await proxy(primary, shadow)
    # In the order the proxy's request has them (/stream/N echoes headers unsorted): the
    # client's own, aiohttp's defaults, then the X-Forwarded-* fields the proxy appends.
    forwarded = {
        "Accept": "*/*",
        "Accept-Encoding": "gzip, deflate, br",
        "User-Agent": f"Python/{sys.version_info[0]}.{sys.version_info[1]} aiohttp/{aiohttp.__version__}",
        "X-Forwarded-For": "127.0.0.1",
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Host": running.traffic_url.removeprefix("http://"),
    }
    differing = []
    total = 0
    for method, target, headers in REQUESTS:
        direct = await fetch(client, method, primary + target, headers | forwarded)
        through = await fetch(client, method, running.traffic_url + target, headers)
        total += len(direct[1])
        if direct != through:
            differing.append((method, target, direct[0], through[0], direct[2], through[2]))
    assert [] == differing
    record_figure("endpoints", len(REQUESTS))
    record_figure("body_bytes", total)


@needs_httpbin
async def test_identical_httpbins_give_zero_mismatches_under_the_rules(
    httpbins: tuple[str, str],
    proxy: StartProxy,
    client: aiohttp.ClientSession,
    record_figure: RecordFigure,
) -> None:
    """Every mirrored request compares as a match: nothing stored, no mismatch, no shadow error."""
    primary, shadow = httpbins
    running = await proxy(primary, shadow, rules=RULES, shadow_timeout=5.0)
    for method, target, headers in REQUESTS:
        await fetch(client, method, running.traffic_url + target, headers)
        # One at a time: httpbin's seeded /bytes share one global random generator across its
        # threads, so a shadow call still streaming would change the next one's bytes.
        assert await running.drain(30)
    page = await running.store.mismatches(limit=200)
    found = [
        (r.target, r.verdict, r.reason, [d.pointer for d in r.differences]) for r in page.items
    ]
    assert [] == found, found
    text = await metrics_of(client, running.admin_url)
    matches = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("shadowproxy_comparisons_total{") and 'verdict="match"' in line
    )
    unmirrored = sample(
        text, "shadowproxy_mirror_skips_total", endpoint="stream", reason="rule_off"
    )
    unmirrored += sample(
        text, "shadowproxy_mirror_skips_total", endpoint="absolute-redirect", reason="rule_off"
    )
    assert (len(REQUESTS) - 2, 2) == (matches, unmirrored)
    assert 0 == sample(text, "shadowproxy_store_dropped_records_total")
    record_figure("compared", matches)


def test_ignoring_the_whole_body_silences_text_bodies(tmp_path: Path) -> None:
    """``ignore: [""]`` ignores the whole body (docs/RULES.md), JSON or not: two HTML pages
    naming different hosts, or two JSON-lines streams, then compare as a match."""
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text('version: 1\ndefaults:\n  ignore: [""]\n')
    rules = load_ruleset(rules_file).resolve("GET", "/absolute-redirect/2", {}, {})
    request = CapturedRequest("GET", "/absolute-redirect/2", "", (), b"", 0.0)
    verdicts = []
    for content_type, a, b in (
        ("text/html", b"<a href='http://127.0.0.1:1/'>", b"<a href='http://127.0.0.1:2/'>"),
        ("application/json", b'{"id": 0}\n{"id": 1}\n', b'{"id": 0}\n{"id": 2}\n'),
    ):
        headers = (("Content-Type", content_type),)
        exchange = Exchange(
            "x",
            "GET /absolute-redirect/{id}",
            request,
            CapturedResponse(200, headers, a, 0.01),
            CapturedResponse(200, headers, b, 0.01),
        )
        verdicts.append(compare(exchange, rules, "v").verdict)
    assert [Verdict.MATCH, Verdict.MATCH] == verdicts
