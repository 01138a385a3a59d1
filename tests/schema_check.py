"""A small JSON Schema checker for the schemas the project ships (rule files, the admin API).

No JSON Schema library is a dependency, so this covers the keywords those schemas use: type,
const, enum, properties, additionalProperties, patternProperties, propertyNames, required,
items, minItems, minProperties, maxProperties, minimum, maximum, pattern, oneOf, allOf (of
object schemas, merged) and ``$ref`` (a JSON Pointer into ``root``).

``closed=True`` also reports a key that an object schema with ``properties`` does not describe
(and leaves open with neither ``additionalProperties`` nor ``patternProperties``): what a
response has and its description forgot. The schemas stay open for clients; the tests do not.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

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


def _resolve(root: dict[str, Any], ref: str) -> Any:
    target: Any = root
    for token in ref.removeprefix("#/").split("/"):
        target = target[token.replace("~1", "/").replace("~0", "~")]
    return target


def _merged(root: dict[str, Any], parts: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {"properties": {}, "required": []}
    for part in parts:
        while "$ref" in part:
            part = _resolve(root, part["$ref"])
        if "allOf" in part:
            part = _merged(root, part["allOf"])
        merged["properties"].update(part.get("properties", {}))
        merged["required"] += part.get("required", [])
        merged.update({k: v for k, v in part.items() if k not in merged})
    return merged


def errors(
    value: Any,
    schema: dict[str, Any],
    root: dict[str, Any],
    where: str = "",
    *,
    closed: bool = False,
) -> list[str]:
    """Where ``value`` breaks ``schema`` (empty when valid); ``$ref``s resolve in ``root``."""

    def check(item: Any, sub: dict[str, Any], at: str) -> list[str]:
        return errors(item, sub, root, at, closed=closed)

    if "$ref" in schema:
        return check(value, _resolve(root, schema["$ref"]), where)
    if "allOf" in schema:
        # Merged, so that a closed check sees every branch's properties as described.
        return check(value, _merged(root, schema["allOf"]), where)
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
        passing = [s for s in schema["oneOf"] if not check(value, s, where)]
        if len(passing) != 1:
            found.append(f"{where}: matches {len(passing)} of oneOf")
    if isinstance(value, dict):
        found += _object_errors(value, schema, where, check, closed=closed)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            found.append(f"{where}: too few items")
        if "items" in schema:
            for index, item in enumerate(value):
                found += check(item, schema["items"], f"{where}/{index}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        found.append(f"{where}: does not match {schema['pattern']}")
    if _type_ok(value, "number") and not (
        schema.get("minimum", value) <= value <= schema.get("maximum", value)
    ):
        found.append(f"{where}: out of range")
    return found


def _object_errors(
    value: dict[str, Any],
    schema: dict[str, Any],
    where: str,
    check: Callable[[Any, dict[str, Any], str], list[str]],
    *,
    closed: bool,
) -> list[str]:
    found = [f"{where}: needs {k}" for k in schema.get("required", []) if k not in value]
    if len(value) < schema.get("minProperties", 0):
        found.append(f"{where}: too few keys")
    if len(value) > schema.get("maxProperties", len(value)):
        found.append(f"{where}: too many keys")
    props = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if "propertyNames" in schema:
            found += check(key, schema["propertyNames"], f"{where}/{key}(name)")
        if key in props:
            found += check(item, props[key], f"{where}/{key}")
        elif any(re.search(p, key) for p in patterns):
            continue
        elif extra is False or (closed and extra is None and props):
            found.append(f"{where}: unknown key {key!r}")
        elif isinstance(extra, dict):
            found += check(item, extra, f"{where}/{key}")
    return found
