"""The HTML report is one self-contained page where traffic shows as text, never as markup."""

from __future__ import annotations

from html.parser import HTMLParser

from shadowproxy.report.html_report import render_html
from shadowproxy.report.model import Report
from tests.report.sample import IMG, JS_URL, SCRIPT


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.marked: list[str] = []
        self._in_mark = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "span" and ("class", "d") in attrs:
            self._in_mark += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._in_mark:
            self._in_mark -= 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_mark:
            self.marked.append(data)


def _parse(report: Report) -> _Page:
    page = _Page()
    page.feed(render_html(report).decode("utf-8"))
    page.close()
    return page


def test_payloads_render_as_text(report: Report) -> None:
    """No script, image or event handler comes out of traffic; the payloads are visible text."""
    page = _parse(report)
    tag_names = {tag for tag, _ in page.tags}
    handlers = [name for _, attrs in page.tags for name in attrs if name.startswith("on")]
    links = [attrs.get("href") or "" for tag, attrs in page.tags if tag == "a"]
    assert (set(), [], []) == (
        tag_names & {"script", "img", "iframe", "object"},
        handlers,
        [link for link in links if not link.startswith("#ep-")],
    )
    text = "".join(page.text)
    assert SCRIPT in text
    assert IMG in text
    assert JS_URL in text


def test_self_contained_and_script_free(report: Report) -> None:
    """No external reference at all, and a CSP that forbids scripts even if escaping failed."""
    page = _parse(report)
    external = [
        value
        for _, attrs in page.tags
        for name, value in attrs.items()
        if name in {"src", "href"} and value and not value.startswith("#")
    ]
    csp = [attrs.get("content") for tag, attrs in page.tags if attrs.get("http-equiv")]
    assert external == []
    assert csp == [
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
        "form-action 'none'"
    ]


def test_numbers_and_verdict(report: Report) -> None:
    """The readiness table carries each endpoint's counts and PASS/FAIL, the banner the verdict."""
    text = " ".join(" ".join(_parse(report).text).split())
    assert "FAIL: 1 of 2 endpoint(s) not ready" in text
    assert "400 4.50 % 0.50 % 3" in text
    assert "PASS 1000 0.00 % 0.00 % 0" in text


def test_example_highlights_each_difference(report: Report) -> None:
    """The side-by-side example marks the differing lines of both responses (gzip decoded)."""
    marked = [line.strip() for line in _parse(report).marked]
    assert marked == [
        '"id": 9174,',  # primary
        '"en": "<script>alert(1)</script>"',
        '"genres": [',
        '"Приключения"',
        "]",
        '"id": "9174",',  # shadow
        '"en": "\\"><img src=x onerror=alert(1)>"',
        '"url": "javascript:alert(1)"',
    ]


def test_long_examples_fold_around_the_differences(report: Report) -> None:
    """A long response shows the differing lines with context; the rest is one gap line each."""
    from dataclasses import replace

    from shadowproxy.store.contract import StoredResponse

    section = report.endpoints[0]
    record = section.examples[0]
    long_doc = "{" + ", ".join(f'"k{i}": {i}' for i in range(100)) + ', "id": 9174}'
    primary = StoredResponse(200, (("content-type", "application/json"),), long_doc.encode(), 1.0)
    folded = replace(
        report,
        endpoints=(replace(section, examples=(replace(record, primary=primary),)),),
    )
    page = _parse(folded)
    text = "".join(page.text)
    assert "⋯ 98 unchanged line(s)" in text
    assert '"k97": 97,' in text
    assert '"k96": 96,' not in text
    assert ['"id": 9174'] == [line.strip() for line in page.marked if "9174" in line][:1]


def test_groups_show_their_triage_state(report: Report) -> None:
    """Each group lists its differences, count and triage state; its note is text."""
    text = " ".join(" ".join(_parse(report).text).split())
    assert f"/id · type /names/{SCRIPT} · value 12 expected {IMG}" in text
