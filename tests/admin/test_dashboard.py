"""The dashboard page: served with a strict CSP, and driven in a real Chromium end to end.

The browser tests open the overview, go to an endpoint, open a mismatch, check the highlighted
difference, triage a group and download a report, saving a screenshot of each step under
``artifacts/screenshots/``. Traffic carries XSS payloads; the page must fire no dialog and grow no
element from them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient

from shadowproxy import appkeys
from shadowproxy.admin.api import setup_api
from shadowproxy.admin.dashboard import CSP, setup_dashboard
from shadowproxy.store import open_store
from shadowproxy.store.contract import Store
from tests.report.traffic import IMG, JS_URL, SCRIPT, TITLE, Traffic, fill

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
TOKEN = "s3cret-token"

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Stands in for the admin app's guard: the API needs the token, POSTs the CSRF header."""
    if request.path.startswith("/api/"):
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "token"}, status=401)
        if request.method == "POST" and request.headers.get("X-Requested-With") != "shadowproxy":
            return web.json_response({"error": "csrf"}, status=403)
    return await handler(request)


def _app(store: Store) -> web.Application:
    app = web.Application(middlewares=[_require_token])
    app[appkeys.STORE] = store
    setup_api(app)
    setup_dashboard(app)
    return app


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'shadow.db'}")
    await opened.aopen()
    yield opened
    await opened.aclose()


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append(dict(attrs))
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data)


async def test_page_has_a_strict_csp_and_no_inline_script(
    aiohttp_client: MakeClient, store: Store
) -> None:
    """GET / answers the shell with the CSP header; its only script is a same-origin file."""
    client = await aiohttp_client(_app(store))
    response = await client.get("/")
    parser = _Tags()
    parser.feed(await response.text())
    assert (200, CSP, [{"src": "/static/app.js", "defer": None}], []) == (
        response.status,
        response.headers["Content-Security-Policy"],
        parser.scripts,
        parser.inline,
    )
    assert "script-src 'self'" in CSP
    assert "'unsafe-inline'" not in CSP


@pytest.mark.parametrize(
    ("path", "status", "media_type"),
    [
        ("/static/app.js", 200, "text/javascript"),
        ("/static/app.css", 200, "text/css"),
        ("/static/favicon.svg", 200, "image/svg+xml"),
        ("/static/nope.js", 404, "text/plain"),
        ("/static/..%2Fapi.py", 404, "text/plain"),
    ],
)
async def test_static_files(
    aiohttp_client: MakeClient, store: Store, path: str, status: int, media_type: str
) -> None:
    """Only the dashboard's own files are served, each with its type and the CSP."""
    client = await aiohttp_client(_app(store))
    response = await client.get(path)
    assert (status, media_type) == (response.status, response.content_type)
    assert "nosniff" == response.headers["X-Content-Type-Options"]


# --- the browser ------------------------------------------------------------------------------


@pytest.fixture
async def served(store: Store) -> AsyncIterator[tuple[str, Traffic]]:
    traffic = await fill(store)
    runner = web.AppRunner(_app(store), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}", traffic
    await runner.cleanup()


INJECTED = """() => ({
    images: document.querySelectorAll('img').length,
    scripts: [...document.scripts].map(s => s.getAttribute('src')),
    handlers: [...document.querySelectorAll('*')].filter(
        el => [...el.attributes].some(a => a.name.startsWith('on'))).length,
    jsLinks: [...document.querySelectorAll('a[href]')].filter(
        a => a.getAttribute('href').trim().toLowerCase().startsWith('javascript')).length,
})"""
CLEAN = {"images": 0, "scripts": ["/static/app.js"], "handlers": 0, "jsLinks": 0}


async def test_browser_walkthrough(served: tuple[str, Traffic], tmp_path: Path) -> None:
    """Overview → endpoint → mismatch (highlighted) → triage → report, payloads inert."""
    if not CHROMIUM.exists():  # noqa: ASYNC240 - one stat before the test starts
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium")
    from playwright.async_api import async_playwright

    base, traffic = served
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    dialogs: list[str] = []
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context(
                viewport={"width": 1440, "height": 900}, accept_downloads=True
            )
            page = await context.new_page()
            page.on("dialog", lambda dialog: dialogs.append(dialog.message))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on(
                "console",
                # Chromium logs every 4xx as an error; the 401s above are meant.
                lambda message: (
                    errors.append(message.text)
                    if message.type == "error" and "Failed to load resource" not in message.text
                    else None
                ),
            )

            # Without a token the API answers 401 and the page asks for one.
            await page.goto(f"{base}/")
            await page.wait_for_selector("#tokenbar:not([hidden])")
            await page.fill("#token-input", "wrong")
            await page.click("#token-form button[type='submit']")
            await page.wait_for_selector("#tokenbar:not([hidden])")
            assert "needs a token" in await page.inner_text("#status")

            # Overview: the token arrives in the fragment and leaves the address bar at once.
            await page.goto(f"{base}/#token={TOKEN}")
            await page.wait_for_selector("#endpoints tbody tr")
            assert f"{base}/#/" == page.url
            assert TOKEN == await page.evaluate("sessionStorage.getItem('shadowproxy.token')")
            assert await page.locator("#tokenbar").is_hidden()
            rows = page.locator("#endpoints tbody tr")
            # Worst first: by mismatch rate, ties by name.
            assert [TITLE, "titles.list", "schedule", "titles.search"] == [
                await rows.nth(i).get_attribute("data-endpoint") for i in range(4)
            ]
            assert ["FAIL", "FAIL", "FAIL", "PASS"] == [
                (await rows.nth(i).locator(".badge").inner_text()).strip() for i in range(4)
            ]
            await page.click("#endpoints th[data-sort='endpoint']")
            await page.wait_for_selector("#endpoints th.sorted.asc[data-sort='endpoint']")
            assert [TITLE, "schedule", "titles.list", "titles.search"] == [
                await rows.nth(i).get_attribute("data-endpoint") for i in range(4)
            ]
            top = page.locator("#top-fields tbody tr td:nth-child(2)")
            assert ["/announce", "/id"] == sorted((await top.all_inner_texts())[:2])
            assert 4 == await page.locator("#endpoints svg.spark").count()
            await page.click("#windows button[data-window='24h']")
            await page.wait_for_selector("#windows button.active[data-window='24h']")
            await page.wait_for_selector(".pagehead .sub:text('last 24h')")
            await page.screenshot(path=SCREENSHOTS / "01-overview.png", full_page=True)

            # Endpoint view: fields sortable, groups with triage buttons.
            await page.click(f"#endpoints a:text-is('{TITLE}')")
            await page.wait_for_selector("#fields .fieldtable tbody tr")
            templates = page.locator("#fields .fieldtable tbody tr td:first-child")
            counts = page.locator("#fields .fieldtable tbody tr td:nth-child(3)")
            assert ["9", "9", "1", "1", "1"] == await counts.all_inner_texts()
            await page.click("#fields th[data-sort='template']")
            await page.wait_for_selector("#fields th.sorted.asc[data-sort='template']")
            assert "/announce" == (await templates.first.inner_text()).strip()
            await page.click("#fields th[data-sort='template']")
            await page.wait_for_selector("#fields th.sorted:not(.asc)[data-sort='template']")
            assert "/url" == (await templates.first.inner_text()).strip()
            await page.screenshot(path=SCREENSHOTS / "02-endpoint.png", full_page=True)

            # Mismatch view: differences highlighted on both sides, navigable.
            await page.click("#mismatches tr[data-id='title-mm-0'] a")
            await page.wait_for_selector("#primary-side .line.current")
            current = page.locator("#primary-side .line.current .tx")
            assert ['"id": 9174,'] == [t.strip() for t in await current.all_inner_texts()]
            shadow_current = page.locator("#shadow-side .line.current .tx")
            assert ['"id": "9174",'] == [t.strip() for t in await shadow_current.all_inner_texts()]
            await page.click("#next-diff")
            assert ['"announce": null,'] == [t.strip() for t in await current.all_inner_texts()]
            assert [] == await shadow_current.all_inner_texts()  # missing in the shadow
            assert "Difference 2 of 2" == await page.inner_text("#diff-pos")
            await page.keyboard.press("n")
            assert "Difference 1 of 2" == await page.inner_text("#diff-pos")
            await page.screenshot(path=SCREENSHOTS / "03-mismatch.png", full_page=True)

            # Scrolling one body keeps the other on the same JSON location (/status is line 10
            # on the left and 9 on the right: the shadow lacks /announce).
            await page.wait_for_timeout(200)
            await page.evaluate(
                """() => {
                    const pane = document.querySelector('#primary-side .code');
                    pane.scrollTop = pane.querySelector('.line[data-ptr="/status"]').offsetTop;
                }"""
            )
            await page.wait_for_function(
                """() => {
                    const pane = document.querySelector('#shadow-side .code');
                    const line = pane.querySelector('.line[data-ptr="/status"]');
                    return Math.abs(pane.scrollTop - line.offsetTop) < 2;
                }""",
                timeout=5000,
            )

            # The payload-carrying mismatch: every payload visible as text, nothing injected.
            await page.goto(f"{base}/#/mismatch/{traffic.xss_id}")
            await page.wait_for_selector("#primary-side .line")
            assert f"/v3/title/{IMG}?code={JS_URL}&q={SCRIPT}" == await page.inner_text("#target")
            primary_text = await page.inner_text("#primary-side")
            assert SCRIPT in primary_text
            assert "onerror=alert(1)>" in primary_text
            assert JS_URL in await page.inner_text("#shadow-side")
            assert "compared-diff" == await page.get_attribute(
                "#headers tr[data-header='x-note'] td:nth-child(2)", "class"
            )
            await page.click(".curl-copy")
            assert (await page.inner_text("#curl-text")).startswith("curl --include --header ")
            await page.screenshot(path=SCREENSHOTS / "04-mismatch-payloads.png", full_page=True)
            assert CLEAN == await page.evaluate(INJECTED)

            # Triage: acknowledge one group, mark the critical one expected, get the rule.
            await page.goto(f"{base}/#/endpoint/{TITLE.replace(' ', '%20')}")
            group = page.locator(f"#groups tr[data-fingerprint='{traffic.critical_fingerprint}']")
            await group.locator("button.expect").click()
            await page.wait_for_selector("#groups .snippet pre")
            assert "expected" == (await group.locator(".badge").inner_text()).strip()
            snippet = yaml.safe_load(await page.inner_text("#groups .snippet pre"))
            assert ["/announce", "/id"] == snippet["endpoints"][0]["ignore"]
            await page.screenshot(path=SCREENSHOTS / "05-triage.png", full_page=True)
            assert CLEAN == await page.evaluate(INJECTED)

            # Report download (fetched with the token, saved as a file).
            await page.click("#export-toggle")
            assert f"Last 24h · {TITLE}" == await page.inner_text("#export-scope")
            async with page.expect_download() as waiting:
                await page.click("#export-menu button[data-format='json']")
            download = await waiting.value
            saved = tmp_path / download.suggested_filename
            await download.save_as(saved)
            report = json.loads(saved.read_text())
            assert (TITLE, 131) == (
                report["endpoints"][0]["endpoint"],
                report["endpoints"][0]["compared"],
            )
            async with page.expect_download() as waiting:
                await page.click("#export-toggle")
                await page.click("#export-menu button[data-format='html']")
            html_download = await waiting.value
            html_path = SCREENSHOTS.parent / "report.html"
            await html_download.save_as(html_path)
            await page.goto(html_path.as_uri())
            await page.screenshot(path=SCREENSHOTS / "06-report.png", full_page=True)
            assert 0 == await page.locator("img, script").count()
        finally:
            await browser.close()
    assert ([], []) == (dialogs, errors)


# --- the browser on a live proxy ---------------------------------------------------------------


def _with_payload_route(app: web.Application, *, shadow: bool) -> web.Application:
    """The demo backend plus a route whose answers carry XSS payloads (differing per side)."""

    async def payload(request: web.Request) -> web.Response:
        document = {
            "id": 1,
            "description": JS_URL if shadow else SCRIPT,
            "names": {"en": IMG},
            "echo": request.query.get("q", ""),
        }
        return web.json_response(document, headers={"X-Note": IMG if shadow else SCRIPT})

    app.router.add_get("/v3/payload/{name}", payload)
    return app


async def test_browser_on_a_live_proxy(
    upstream: Callable[[web.Application], Awaitable[str]],
    proxy: Callable[..., Awaitable[Any]],
    tmp_path: Path,
) -> None:
    """The demo's legacy API and its rewrite behind a real proxy (admin token set), real
    traffic through it; the dashboard shows the planted differences, triage goes through the
    admin app's guard with the token, and the payloads stay inert."""
    if not CHROMIUM.exists():  # noqa: ASYNC240 - one stat before the test starts
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium")
    from playwright.async_api import async_playwright
    from yarl import URL

    from shadowproxy.demo.backends import legacy_app, rewrite_app
    from shadowproxy.demo.runner import packaged_rules
    from shadowproxy.demo.traffic import drive

    primary = await upstream(_with_payload_route(legacy_app(), shadow=False))
    shadow = await upstream(_with_payload_route(rewrite_app(), shadow=True))
    running = await proxy(primary, shadow, rules=packaged_rules(), admin_token=TOKEN)
    await drive(running.traffic_url, duration=None, requests=120, concurrency=4, tour_first=True)
    async with aiohttp.ClientSession() as session:
        target = URL(f"{running.traffic_url}/v3/payload/x").with_query(q=SCRIPT)
        async with session.get(target, headers={"X-Note": SCRIPT, "Referer": JS_URL}) as reply:
            assert 200 == reply.status
    assert await running.drain()

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    dialogs: list[str] = []
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("dialog", lambda dialog: dialogs.append(dialog.message))
            page.on("pageerror", lambda error: errors.append(str(error)))

            await page.goto(f"{running.admin_url}/#token={TOKEN}")
            await page.wait_for_selector("#endpoints tbody tr")
            await page.screenshot(path=SCREENSHOTS / "live-01-overview.png", full_page=True)
            failing = page.locator("#endpoints tbody tr:has(.badge.fail) td.endpoint a")
            assert await failing.count() >= 3

            await page.click("#endpoints tr[data-endpoint^='GET /v3/payload'] td.endpoint a")
            await page.wait_for_selector("#mismatches tbody tr")
            await page.screenshot(path=SCREENSHOTS / "live-02-endpoint.png", full_page=True)
            await page.locator("#mismatches tbody tr a").first.click()
            await page.wait_for_selector("#primary-side .line.current")
            assert SCRIPT in await page.inner_text("#primary-side")
            assert CLEAN == await page.evaluate(INJECTED)
            await page.screenshot(path=SCREENSHOTS / "live-03-mismatch.png", full_page=True)

            # A planted difference of the rewrite (the demo's title endpoint), highlighted.
            await page.goto(f"{running.admin_url}/#/")
            await page.wait_for_selector("#endpoints tbody tr")
            await page.click("#endpoints tr[data-endpoint='title.by_id'] td.endpoint a")
            await page.wait_for_selector("#groups tr[data-fingerprint]")
            group = page.locator("#groups tr[data-fingerprint]").first
            await group.locator("button.expect").click()
            await page.wait_for_selector("#groups .snippet pre")
            snippet = yaml.safe_load(await page.inner_text("#groups .snippet pre"))
            assert snippet["endpoints"][0]["ignore"]
            await page.screenshot(path=SCREENSHOTS / "live-04-triage.png", full_page=True)
            await page.locator("#mismatches tbody tr a").first.click()
            await page.wait_for_selector(".difftable tbody tr.current")
            await page.screenshot(path=SCREENSHOTS / "live-05-planted.png", full_page=True)

            # The Markdown report for a PR comment, downloaded through the guarded API.
            await page.click("#export-toggle")
            async with page.expect_download() as waiting:
                await page.click("#export-menu button[data-format='md']")
            saved = tmp_path / "report.md"
            await (await waiting.value).save_as(saved)
            markdown = saved.read_text(encoding="utf-8")
            assert markdown.startswith("## ❌ shadowproxy readiness: FAIL")
            assert "| ❌ | title.by\\_id |" in markdown
        finally:
            await browser.close()
    assert ([], []) == (dialogs, errors)


async def test_browser_empty_store_then_many_groups(store: Store) -> None:
    """Before any traffic, the overview says so plainly (no stray text, no script error); an
    endpoint with more groups than a page then shows the rest on request, none twice."""
    if not CHROMIUM.exists():  # noqa: ASYNC240 - one stat before the test starts
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium")
    from playwright.async_api import async_playwright

    from shadowproxy.model import Difference, DiffKind
    from tests.factories import make_comparison

    runner = web.AppRunner(_app(store), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    errors: list[str] = []
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
            )
            try:
                page = await browser.new_page()
                page.on("pageerror", lambda error: errors.append(str(error)))
                await page.goto(f"http://{host}:{port}/#token={TOKEN}")
                await page.wait_for_selector("main .empty")
                text = await page.inner_text("main")

                await store.write(
                    [
                        make_comparison(
                            id=f"feed-{i}",
                            endpoint="GET /v3/feed",
                            differences=(
                                Difference(f"/list/0/f{i}", f"/list/*/f{i}", DiffKind.EXTRA),
                            ),
                        )
                        for i in range(30)
                    ]
                )
                await page.goto(f"http://{host}:{port}/#/endpoint/GET%20%2Fv3%2Ffeed")
                rows = page.locator("#groups tr[data-fingerprint]")
                await page.wait_for_selector("#groups tr[data-fingerprint]")
                first = await rows.count()
                await page.click("#more-groups")
                await page.wait_for_selector("#more-groups", state="hidden")
                fingerprints = [
                    await rows.nth(i).get_attribute("data-fingerprint")
                    for i in range(await rows.count())
                ]
            finally:
                await browser.close()
    finally:
        await runner.cleanup()
    assert "No comparisons in the last 1h." in text
    assert "null" not in text
    assert [] == errors
    assert (25, 30, 30) == (first, len(fingerprints), len(set(fingerprints)))
