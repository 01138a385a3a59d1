"""The Markdown report reads well in a PR comment and carries no markup from traffic."""

from __future__ import annotations

from shadowproxy.report.markdown_report import escape_markdown, render_markdown
from shadowproxy.report.model import Report


def test_table_and_verdict(report: Report) -> None:
    """A verdict heading, one table row per endpoint, and the reasons for failing."""
    text = render_markdown(report).decode("utf-8")
    assert text.startswith("## ❌ shadowproxy readiness: FAIL: 1 of 2 endpoint(s) not ready\n")
    rows = [line for line in text.splitlines() if line.startswith(("| ✅", "| ❌"))]
    assert rows == [
        "| ❌ | GET /v3/title/{id}&lt;script&gt;alert(1)&lt;/script&gt; | 400 | 4.50 % | 0.50 % "
        "| 3 | 90 / 140 |",
        '| ✅ | =HYPERLINK("http://evil") | 1000 | 0.00 % | 0.00 % | 0 | 60 / 55 |',
    ]
    assert "<script>" not in text
    assert "<img" not in text


def test_escaping() -> None:
    """Markdown punctuation and HTML are neutralised; newlines cannot break the table."""
    assert (
        escape_markdown("a|b *c* [x](javascript:y)\n<img> `z`")
        == "a\\|b \\*c\\* \\[x\\](javascript:y) &lt;img&gt; \\`z\\`"
    )
