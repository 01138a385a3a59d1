"""Time bounds parse from durations, timestamps and ISO dates; nonsense is refused."""

from __future__ import annotations

import pytest

from shadowproxy.report.window import Window, WindowError, parse_instant, parse_window

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", NOW - 86_400),
        ("30m", NOW - 1_800),
        ("7d", NOW - 604_800),
        ("90s", NOW - 90),
        ("1.5h", NOW - 5_400),
        ("1732600000", 1_732_600_000.0),
        ("2026-11-26T10:00:00Z", 1_795_687_200.0),
        ("2026-11-26", 1_795_651_200.0),
    ],
)
def test_instants(text: str, expected: float) -> None:
    """Relative values count back from now; absolute values are UTC."""
    assert expected == parse_instant(text, now=NOW)


@pytest.mark.parametrize("text", ["yesterday", "24x", "-5h", "nan", "1e400", "24 h"])
def test_nonsense_is_refused(text: str) -> None:
    """Anything else raises WindowError with the accepted forms in the message."""
    with pytest.raises(WindowError, match="30m, 24h, 7d"):
        parse_instant(text, now=NOW)


def test_window_bounds_are_ordered() -> None:
    """since after until is an error; empty bounds are absent."""
    assert Window(NOW - 3600, None) == parse_window("1h", "", now=NOW)
    with pytest.raises(WindowError, match="after"):
        parse_window("1h", "2h", now=NOW)
