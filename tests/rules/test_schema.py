"""The shipped JSON Schema accepts every example rule file and rejects what the loader rejects."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.schema_check import errors

RULES_DIR = Path(__file__).parents[2] / "rules"
SCHEMA = json.loads(resources.files("shadowproxy.rules").joinpath("schema.json").read_text())


@pytest.mark.parametrize("path", sorted(RULES_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_example_files_are_valid_under_the_schema(path: Path) -> None:
    """Every shipped rule file passes the schema editors check it with."""
    assert [] == errors(yaml.safe_load(path.read_text()), SCHEMA, SCHEMA)


@pytest.mark.parametrize(
    "document",
    [
        {"version": 2},
        {"version": 1, "endpoints": [{"match": {"path": "/x"}, "ignroe": ["/a"]}]},
        {"version": 1, "defaults": {"coerce": {"/id": "numbr"}}},
        {"version": 1, "defaults": {"sample": 150}},
        {"version": 1, "endpoints": [{"match": {"method": "GTE", "path": "/x"}}]},
        {"version": 1, "defaults": {"transform": {"primary": [{"drop": "/a", "rename": {}}]}}},
    ],
)
def test_schema_rejects_what_the_loader_rejects(document: dict[str, Any]) -> None:
    """Typos and bad values the loader refuses are flagged by the schema too."""
    assert errors(document, SCHEMA, SCHEMA)
