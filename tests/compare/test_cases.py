"""Golden cases: one directory per rule or per bug fixed, under ``cases/<name>/``.

Each holds ``primary.json``, ``shadow.json``, optionally ``rules.yaml`` (its defaults apply), and
``expected.json``: the differences (pointer, where, kind, and when given severity and values);
``rules_file`` and ``endpoint`` there pick a shipped rule file and an endpoint in it instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from shadowproxy.cli.diff import endpoint_rules
from shadowproxy.compare.differ import diff_documents
from shadowproxy.rules import load_ruleset

CASES = Path(__file__).parent / "cases"
REPO = Path(__file__).parents[2]


def shown(diff: Any, wanted: dict[str, Any]) -> dict[str, Any]:
    """The difference in the expected file's terms (only the fields the case spells out)."""
    full = {
        "pointer": diff.pointer,
        "where": diff.where,
        "kind": str(diff.kind),
        "severity": str(diff.severity),
        "primary": diff.primary,
        "shadow": diff.shadow,
    }
    return {key: full[key] for key in wanted}


@pytest.mark.parametrize("name", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_golden_case(name: str) -> None:
    """The engine finds exactly the differences the case expects, in document order."""
    folder = CASES / name
    expected = orjson.loads((folder / "expected.json").read_bytes())
    if "rules_file" in expected:
        ruleset = load_ruleset(REPO / expected["rules_file"])
    else:
        rules_path = folder / "rules.yaml"
        ruleset = load_ruleset(rules_path if rules_path.exists() else None)
    rules = endpoint_rules(ruleset, expected.get("endpoint"))
    primary = orjson.loads((folder / "primary.json").read_bytes())
    shadow = orjson.loads((folder / "shadow.json").read_bytes())
    diffs = diff_documents(primary, shadow, rules)
    wanted = expected["differences"]
    assert wanted == [shown(d, w) for d, w in zip(diffs, wanted, strict=False)]
    assert len(wanted) == len(diffs), [d.where for d in diffs]
