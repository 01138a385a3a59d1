"""``shadowproxy rules check``: validation and explanation, through the real command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RULES_DIR = Path(__file__).parents[2] / "rules"


def shadowproxy(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shadowproxy", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_valid_file_is_explained() -> None:
    """A valid file exits 0 and says, per endpoint, what will be compared and how."""
    result = shadowproxy("rules", "check", RULES_DIR / "anilibria.yaml")
    assert 0 == result.returncode, result.stderr
    out = result.stdout
    assert "valid (version " in out
    assert "1. title.by_id: GET /v3/title ?id=*" in out
    assert "/list: unordered, matched by key id" in out
    assert "/**/in_favorites: ignored" in out
    assert "title.random: GET /v3/title/random" in out
    assert "mirror: no" in out


def test_invalid_file_exits_2_with_location(tmp_path: Path) -> None:
    """An invalid file exits 2; the message names file, line, column, rule and a suggestion."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        "version: 1\nendpoints:\n  - name: genres\n    match: {path: /v3/genres}\n"
        "    unordred: ['']\n"
    )
    result = shadowproxy("rules", "check", path)
    assert 2 == result.returncode
    assert (
        f'invalid: {path}:5:5: endpoint "genres": unknown key "unordred" in an endpoint '
        '(did you mean "unordered"?)'
    ) in result.stderr


def test_quiet_prints_nothing_when_valid() -> None:
    """``--quiet`` is for scripts: exit status only."""
    result = shadowproxy("rules", "check", "-q", RULES_DIR / "starter.yaml")
    assert (0, "") == (result.returncode, result.stdout)
