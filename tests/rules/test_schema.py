"""The shipped JSON Schema accepts every example rule file and rejects what the loader rejects.

No JSON Schema library is a dependency, so a small validator for the keywords the schema uses
lives here (type, const, enum, properties, additionalProperties, patternProperties,
propertyNames, required, items, minItems, minProperties, maxProperties, minimum, maximum,
pattern, oneOf, $ref).
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

RULES_DIR = Path(__file__).parents[2] / "rules"
SCHEMA = json.loads(resources.files("shadowproxy.rules").joinpath("schema.json").read_text())
TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _type_ok(value: Any, name: str) -> bool:
    if name in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return name == "number" or float(value).is_integer()
    return isinstance(value, TYPES[name])


def errors(value: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Where ``value`` breaks ``schema`` (empty when valid)."""
    if "$ref" in schema:
        target: Any = SCHEMA
        for token in schema["$ref"].lstrip("#/").split("/"):
            target = target[token]
        return errors(value, target, where)
    found: list[str] = []
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_ok(value, n) for n in names):
            return [f"{where}: not {names}"]
    if "const" in schema and value != schema["const"]:
        found.append(f"{where}: not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: not one of {schema['enum']}")
    if "oneOf" in schema:
        passing = [s for s in schema["oneOf"] if not errors(value, s, where)]
        if len(passing) != 1:
            found.append(f"{where}: matches {len(passing)} of oneOf")
    if isinstance(value, dict):
        found += [f"{where}: needs {k}" for k in schema.get("required", []) if k not in value]
        if len(value) < schema.get("minProperties", 0):
            found.append(f"{where}: too few keys")
        if len(value) > schema.get("maxProperties", len(value)):
            found.append(f"{where}: too many keys")
        props = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        for key, item in value.items():
            if "propertyNames" in schema:
                found += errors(key, schema["propertyNames"], f"{where}/{key}(name)")
            if key in props:
                found += errors(item, props[key], f"{where}/{key}")
            elif any(re.search(p, key) for p in patterns):
                continue
            elif schema.get("additionalProperties") is False:
                found.append(f"{where}: unknown key {key!r}")
            elif isinstance(schema.get("additionalProperties"), dict):
                found += errors(item, schema["additionalProperties"], f"{where}/{key}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            found.append(f"{where}: too few items")
        if "items" in schema:
            for index, item in enumerate(value):
                found += errors(item, schema["items"], f"{where}/{index}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        found.append(f"{where}: does not match {schema['pattern']}")
    if _type_ok(value, "number") and not (
        schema.get("minimum", value) <= value <= schema.get("maximum", value)
    ):
        found.append(f"{where}: out of range")
    return found


@pytest.mark.parametrize("path", sorted(RULES_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_example_files_are_valid_under_the_schema(path: Path) -> None:
    """Every shipped rule file passes the schema editors check it with."""
    assert [] == errors(yaml.safe_load(path.read_text()), SCHEMA)


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
    assert errors(document, SCHEMA)
