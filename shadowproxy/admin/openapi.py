"""The OpenAPI 3.1 description of ``/api/v1``, served at ``/api/v1/openapi.json``.

Built from small helpers rather than written out as one JSON file, so shared parameters (the time
window, the readiness criteria, pagination) are declared once.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from shadowproxy import __version__
from shadowproxy.control import control_openapi
from shadowproxy.report.schema import SCHEMA as REPORT_SCHEMA

_WINDOW = [
    {
        "name": name,
        "in": "query",
        "required": False,
        "description": f"{label}: a duration back from now (30m, 24h, 7d), a Unix timestamp or "
        "an ISO 8601 date.",
        "schema": {"type": "string"},
    }
    for name, label in (("since", "Start of the window"), ("until", "End of the window"))
]
_ENDPOINT = {
    "name": "endpoint",
    "in": "query",
    "required": False,
    "description": "Only this endpoint (its name, e.g. `GET /v3/title/{id}`).",
    "schema": {"type": "string"},
}
_PAGE = [
    {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "The `next_cursor` of the previous page.",
        "schema": {"type": "string"},
    },
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
    },
]
_CRITERIA: list[dict[str, Any]] = [
    {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }
    for name, description, schema in (
        (
            "max_mismatch_rate",
            "Mismatch rate must be below this fraction (or percentage with %).",
            {"type": "number", "default": 0.001},
        ),
        (
            "max_shadow_error_rate",
            "Shadow error rate must be below this fraction.",
            {"type": "number", "default": 0.001},
        ),
        (
            "max_critical",
            "Comparisons with critical differences tolerated.",
            {"type": "integer", "default": 0},
        ),
        (
            "max_latency_ratio",
            "Shadow p95 must be below primary p95 times this.",
            {"type": "number", "default": 1.2},
        ),
        (
            "max_shadow_p95_ms",
            "Shadow p95 must be below this many milliseconds.",
            {"type": "number", "default": 500},
        ),
        (
            "min_samples",
            "Comparisons needed before an endpoint can pass.",
            {"type": "integer", "default": 100},
        ),
    )
]

_LATENCY = {
    "type": "object",
    "properties": {"p50": {"type": "number"}, "p95": {"type": "number"}},
}
_COUNTS = {
    "compared": {"type": "integer"},
    "matches": {"type": "integer"},
    "mismatches": {"type": "integer"},
    "shadow_errors": {"type": "integer"},
    "skipped": {"type": "integer"},
    "critical": {"type": "integer", "description": "Comparisons with a critical difference."},
    "mismatch_rate": {"type": "number"},
    "shadow_error_rate": {"type": "number"},
}
_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "properties": {"error": {"type": "string"}},
        "required": ["error"],
    },
    "Window": {
        "type": "object",
        "properties": {
            "since": {"type": ["number", "null"]},
            "until": {"type": ["number", "null"]},
        },
    },
    "EndpointSummary": {
        "type": "object",
        "properties": {
            "endpoint": {"type": "string"},
            **_COUNTS,
            "latency_ms": {
                "type": "object",
                "properties": {"primary": _LATENCY, "shadow": _LATENCY},
            },
        },
    },
    "Totals": {"type": "object", "properties": _COUNTS},
    "Check": {
        "type": "object",
        "properties": {
            "name": {
                "type": "string",
                "enum": [
                    "samples",
                    "mismatch_rate",
                    "critical",
                    "shadow_error_rate",
                    "latency_ratio",
                    "shadow_p95",
                ],
            },
            "passed": {"type": "boolean"},
            "actual": {"type": "number"},
            "limit": {"type": "number"},
            "detail": {"type": "string"},
        },
    },
    "Readiness": {
        "type": "object",
        "properties": {
            "endpoint": {"type": "string"},
            "passed": {"type": "boolean"},
            "checks": {"type": "array", "items": {"$ref": "#/components/schemas/Check"}},
        },
    },
    "Field": {
        "type": "object",
        "properties": {
            "template": {"type": "string", "description": "JSON Pointer with * for indices."},
            "kind": {"type": "string"},
            "count": {"type": "integer"},
            "share": {"type": "number", "description": "count / compared for the endpoint."},
        },
    },
    "Difference": {
        "type": "object",
        "properties": {
            "pointer": {"type": "string"},
            "template": {"type": "string"},
            "kind": {
                "type": "string",
                "enum": [
                    "value",
                    "type",
                    "missing",
                    "extra",
                    "status",
                    "header",
                    "unparseable",
                    "text",
                ],
            },
            "primary": {},
            "shadow": {},
            "severity": {"type": "string", "enum": ["normal", "critical"]},
            "label": {"type": "string"},
        },
    },
    "MismatchItem": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "at": {"type": "number"},
            "endpoint": {"type": "string"},
            "method": {"type": "string"},
            "target": {"type": "string"},
            "verdict": {"type": "string", "enum": ["mismatch", "shadow_error"]},
            "reason": {"type": "string"},
            "fingerprint": {"type": "string"},
            "ruleset_version": {"type": "string"},
            "primary_status": {"type": ["integer", "null"]},
            "shadow_status": {"type": ["integer", "null"]},
            "shadow_error": {"type": ["string", "null"]},
            "differences": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/Difference"},
            },
        },
    },
    "Body": {
        "type": "object",
        "description": "A stored body, Content-Encoding undone.",
        "properties": {
            "size": {"type": "integer", "description": "Bytes as stored."},
            "encoding": {"type": "string", "description": "The encoding undone, or empty."},
            "text": {"type": ["string", "null"], "description": "The body when valid UTF-8."},
            "base64": {"type": ["string", "null"], "description": "The body when not UTF-8."},
            "is_json": {"type": "boolean"},
            "cut": {"type": "boolean"},
            "lines": {
                "type": ["array", "null"],
                "description": "Pretty-printed JSON, one entry per line, with the pointer of "
                "the value on the line (for highlighting differences).",
                "items": {
                    "type": "object",
                    "properties": {
                        "depth": {"type": "integer"},
                        "text": {"type": "string"},
                        "pointer": {"type": "string"},
                    },
                },
            },
        },
    },
    "Response": {
        "type": "object",
        "properties": {
            "status": {"type": ["integer", "null"]},
            "error": {"type": ["string", "null"]},
            "elapsed_ms": {"type": "number"},
            "truncated": {"type": "boolean"},
            "headers": {
                "type": "array",
                "items": {"type": "array", "items": {"type": "string"}},
            },
            "body": {"$ref": "#/components/schemas/Body"},
        },
    },
    "Group": {
        "type": "object",
        "properties": {
            "fingerprint": {"type": "string"},
            "endpoint": {"type": "string"},
            "signature": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"template": {"type": "string"}, "kind": {"type": "string"}},
                },
            },
            "count": {"type": "integer"},
            "first_seen": {"type": "number"},
            "last_seen": {"type": "number"},
            "example_ids": {"type": "array", "items": {"type": "string"}},
            "state": {"type": "string", "enum": ["open", "acknowledged", "expected"]},
            "note": {"type": "string"},
        },
    },
    "Criteria": {
        "type": "object",
        "description": "The readiness gate's thresholds (the query parameters of the same names).",
        "properties": {
            p["name"]: {"type": p["schema"]["type"], "description": p["description"]}
            for p in _CRITERIA
        },
    },
    "EndpointReport": {
        "allOf": [
            {"$ref": "#/components/schemas/EndpointSummary"},
            {
                "type": "object",
                "properties": {
                    "readiness": {"$ref": "#/components/schemas/Readiness"},
                    "fields": {"type": "array", "items": {"$ref": "#/components/schemas/Field"}},
                    "examples": {
                        "type": "array",
                        "description": "Newest first, one per group.",
                        "items": {"$ref": "#/components/schemas/MismatchItem"},
                    },
                    "groups": {
                        "type": "array",
                        "description": "Most frequent first.",
                        "items": {"$ref": "#/components/schemas/Group"},
                    },
                },
            },
        ]
    },
    "Report": {
        "type": "object",
        "description": "The JSON report (`report --format json`, `/api/v1/report?format=json`).",
        "required": [
            "schema",
            "generated_at",
            "window",
            "criteria",
            "passed",
            "verdict",
            "totals",
            "endpoints",
        ],
        "properties": {
            "schema": {"const": REPORT_SCHEMA},
            "generated_at": {"type": "string", "description": "ISO 8601, UTC."},
            "window": {
                "type": "object",
                "properties": {
                    "since": {"type": ["number", "null"]},
                    "until": {"type": ["number", "null"]},
                    "since_iso": {"type": ["string", "null"]},
                    "until_iso": {"type": ["string", "null"]},
                    "endpoint": {"type": ["string", "null"], "description": "The filter, if any."},
                },
            },
            "criteria": {"$ref": "#/components/schemas/Criteria"},
            "passed": {"type": "boolean", "description": "The gate: every endpoint ready."},
            "verdict": {"type": "string"},
            "totals": {"$ref": "#/components/schemas/Totals"},
            "endpoints": {
                "type": "array",
                "description": "Sorted by name.",
                "items": {"$ref": "#/components/schemas/EndpointReport"},
            },
        },
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "200": {"description": description, "content": {"application/json": {"schema": schema}}},
        "400": {
            "description": "A bad parameter, named in the message.",
            "content": {"application/json": {"schema": _ref("Error")}},
        },
        "503": {
            "description": "The store cannot answer.",
            "content": {"application/json": {"schema": _ref("Error")}},
        },
    }


def _array(item: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(item)}


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document for every route :func:`~shadowproxy.admin.api.setup_api` adds."""
    paths: dict[str, Any] = {
        "/api/v1/summary": {
            "get": {
                "summary": "Per-endpoint counts, rates and latency over a window, with totals.",
                "parameters": [*_WINDOW, _ENDPOINT],
                "responses": _ok(
                    "Summary",
                    {
                        "type": "object",
                        "properties": {
                            "window": _ref("Window"),
                            "endpoints": _array("EndpointSummary"),
                            "totals": _ref("Totals"),
                        },
                    },
                ),
            }
        },
        "/api/v1/trend": {
            "get": {
                "summary": "Comparisons, mismatches and shadow errors per time bucket.",
                "parameters": [
                    *_WINDOW,
                    _ENDPOINT,
                    {
                        "name": "buckets",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 60},
                    },
                ],
                "responses": _ok(
                    "Trend",
                    {
                        "type": "object",
                        "properties": {
                            "window": _ref("Window"),
                            "bucket_seconds": {"type": "number"},
                            "endpoints": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "endpoint": {"type": "string"},
                                        "points": {
                                            "type": "array",
                                            "items": {
                                                "type": "object",
                                                "properties": {
                                                    "start": {"type": "number"},
                                                    "compared": {"type": "integer"},
                                                    "mismatches": {"type": "integer"},
                                                    "shadow_errors": {"type": "integer"},
                                                },
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    },
                ),
            }
        },
        "/api/v1/fields": {
            "get": {
                "summary": "Differing path templates per endpoint, most frequent first.",
                "parameters": [*_WINDOW, _ENDPOINT],
                "responses": _ok(
                    "Fields",
                    {
                        "type": "object",
                        "properties": {
                            "window": _ref("Window"),
                            "endpoints": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "endpoint": {"type": "string"},
                                        "compared": {"type": "integer"},
                                        "fields": _array("Field"),
                                    },
                                },
                            },
                        },
                    },
                ),
            }
        },
        "/api/v1/mismatches": {
            "get": {
                "summary": "Stored mismatches and shadow errors, newest first, cursor-paginated.",
                "parameters": [
                    *_WINDOW,
                    _ENDPOINT,
                    {
                        "name": "verdict",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["mismatch", "shadow_error"]},
                    },
                    {
                        "name": "fingerprint",
                        "in": "query",
                        "required": False,
                        "description": "Only mismatches of this group.",
                        "schema": {"type": "string"},
                    },
                    *_PAGE,
                ],
                "responses": _ok(
                    "One page",
                    {
                        "type": "object",
                        "properties": {
                            "items": _array("MismatchItem"),
                            "next_cursor": {"type": ["string", "null"]},
                        },
                    },
                ),
            }
        },
        "/api/v1/mismatches/{id}": {
            "get": {
                "summary": "One mismatch in full: request, both responses, differences, curl.",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    **_ok(
                        "The mismatch",
                        {
                            "allOf": [
                                _ref("MismatchItem"),
                                {
                                    "type": "object",
                                    "properties": {
                                        "request": {
                                            "type": "object",
                                            "properties": {
                                                "method": {"type": "string"},
                                                "target": {"type": "string"},
                                                "headers": {"type": "array"},
                                                "body": _ref("Body"),
                                            },
                                        },
                                        "primary": _ref("Response"),
                                        "shadow": _ref("Response"),
                                        "curl": {
                                            "type": "object",
                                            "description": "Shell-quoted curl commands replaying "
                                            "the request, keyed by target (primary, shadow or "
                                            "proxy).",
                                            "additionalProperties": {"type": "string"},
                                        },
                                    },
                                },
                            ]
                        },
                    ),
                    "404": {
                        "description": "No such mismatch.",
                        "content": {"application/json": {"schema": _ref("Error")}},
                    },
                },
            }
        },
        "/api/v1/groups": {
            "get": {
                "summary": "Groups of identical mismatches, most frequent first.",
                "parameters": [
                    _ENDPOINT,
                    {
                        "name": "state",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["open", "acknowledged", "expected"]},
                    },
                    *_PAGE,
                ],
                "responses": _ok(
                    "One page",
                    {
                        "type": "object",
                        "properties": {
                            "items": _array("Group"),
                            "next_cursor": {"type": ["string", "null"]},
                        },
                    },
                ),
            }
        },
        "/api/v1/groups/{fingerprint}/triage": {
            "post": {
                "summary": "Set a group's triage state; `expected` returns the rule that would "
                "silence it.",
                "description": "Needs `Authorization: Bearer <token>` when a token is configured, "
                "else `X-Requested-With: shadowproxy`.",
                "parameters": [
                    {
                        "name": "fingerprint",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["state"],
                                "properties": {
                                    "state": {
                                        "type": "string",
                                        "enum": ["open", "acknowledged", "expected"],
                                    },
                                    "note": {"type": "string", "maxLength": 2000},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    **_ok(
                        "The updated group",
                        {
                            "type": "object",
                            "properties": {
                                "group": _ref("Group"),
                                "snippet": {
                                    "type": ["string", "null"],
                                    "description": "YAML for the rule file (state expected).",
                                },
                            },
                        },
                    ),
                    "404": {
                        "description": "No such group.",
                        "content": {"application/json": {"schema": _ref("Error")}},
                    },
                    "413": {
                        "description": "Body over 16 KiB.",
                        "content": {"application/json": {"schema": _ref("Error")}},
                    },
                },
            }
        },
        "/api/v1/readiness": {
            "get": {
                "summary": "Per-endpoint pass/fail against the readiness criteria.",
                "parameters": [*_WINDOW, _ENDPOINT, *_CRITERIA],
                "responses": _ok(
                    "Readiness",
                    {
                        "type": "object",
                        "properties": {
                            "window": _ref("Window"),
                            "criteria": _ref("Criteria"),
                            "passed": {"type": "boolean"},
                            "endpoints": _array("Readiness"),
                        },
                    },
                ),
            }
        },
        "/api/v1/report": {
            "get": {
                "summary": "Download the readiness report (see docs/REPORTS.md).",
                "parameters": [
                    {
                        "name": "format",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "type": "string",
                            "enum": ["html", "json", "csv", "md", "junit"],
                            "default": "html",
                        },
                    },
                    *_WINDOW,
                    _ENDPOINT,
                    *_CRITERIA,
                    {
                        "name": "examples",
                        "in": "query",
                        "required": False,
                        "description": "Example mismatches per endpoint.",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 20, "default": 3},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The report, as an attachment.",
                        "content": {
                            "text/html": {},
                            "application/json": {"schema": _ref("Report")},
                            "text/csv": {},
                            "text/markdown": {},
                            "application/xml": {},
                        },
                    },
                    "400": {
                        "description": "A bad parameter.",
                        "content": {"application/json": {"schema": _ref("Error")}},
                    },
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "summary": "This document.",
                "responses": {"200": {"description": "OpenAPI 3.1"}},
            }
        },
        "/api/v1/rules/reload": {
            "post": {
                "summary": "Re-read the rule file; an invalid file keeps the rules in force.",
                "responses": {
                    "200": {"description": "The new rules are in force."},
                    "422": {"description": "The file is invalid; the error names file and line."},
                },
            }
        },
    }
    control = control_openapi()
    paths.update(control["paths"])
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "shadowproxy admin API",
            "version": __version__,
            "description": "Read what the shadow comparison found; triage groups; export reports. "
            "Bound beyond loopback, every call needs `Authorization: Bearer <token>`.",
        },
        "components": {
            "schemas": {**_SCHEMAS, **control["schemas"]},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
        "paths": paths,
    }


_REF = re.compile(r'"#/components/schemas/([^"]+)"')


def report_schema() -> dict[str, Any]:
    """The JSON report's shape as a standalone JSON Schema (2020-12): ``Report`` and the
    schemas it refers to, from the same descriptions the OpenAPI document serves."""
    schemas = openapi_document()["components"]["schemas"]
    needed: dict[str, Any] = {}
    pending = ["Report"]
    while pending:
        name = pending.pop()
        if name not in needed:
            needed[name] = schemas[name]
            pending += _REF.findall(json.dumps(schemas[name]))
    text = json.dumps(needed).replace("#/components/schemas/", "#/$defs/")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:shadowproxy:" + REPORT_SCHEMA.removeprefix("shadowproxy.").replace("/", ":"),
        "title": "shadowproxy report",
        "$ref": "#/$defs/Report",
        "$defs": json.loads(text),
    }
