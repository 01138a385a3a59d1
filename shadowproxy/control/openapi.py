"""The OpenAPI 3.1 description of the control routes, for the admin API's document to merge in.

``control_openapi()["paths"]`` goes into the document's ``paths`` and
``control_openapi()["schemas"]`` into ``components.schemas``.
"""

from __future__ import annotations

from typing import Any

_NUMBER_OR_NULL = {"type": ["number", "null"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


_SCHEMAS: dict[str, Any] = {
    "ControlSwitches": {
        "type": "object",
        "properties": {
            "version": {"type": "integer", "minimum": 0},
            "updated_at": {"type": "number", "description": "Unix time of the last change."},
            "killed": {"type": "boolean", "description": "The kill switch: nothing is mirrored."},
            "sample": {
                "type": ["number", "null"],
                "minimum": 0,
                "maximum": 100,
                "description": "Replaces --sample; null = each proxy's setting.",
            },
            "shadow_rps": {
                **_NUMBER_OR_NULL,
                "minimum": 0,
                "description": "Fleet-wide shadow requests per second (0 = no cap); "
                "null = each proxy's --shadow-rps.",
            },
            "endpoints": {
                "type": "object",
                "additionalProperties": {"type": "boolean"},
                "description": "Endpoint name to mirroring on (true) or off (false).",
            },
        },
    },
    "ControlChange": {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {
            "killed": {"type": "boolean"},
            "sample": {"type": ["number", "null"], "minimum": 0, "maximum": 100},
            "shadow_rps": {**_NUMBER_OR_NULL, "minimum": 0},
            "endpoints": {
                "type": "object",
                "additionalProperties": {"type": ["boolean", "null"]},
                "description": "null clears that endpoint's override.",
            },
        },
    },
    "ControlState": {
        "type": "object",
        "properties": {
            "switches": _ref("ControlSwitches"),
            "in_force": {
                "type": "object",
                "properties": {
                    "mirroring": {"type": "boolean"},
                    "sample": {"type": "number"},
                    "shadow_rps": {"type": "number"},
                },
            },
            "control": {
                "type": "object",
                "properties": {
                    "mode": {"enum": ["redis", "local"]},
                    "connected": {"type": "boolean"},
                    "last_error": {"type": ["string", "null"]},
                    "last_sync": {"type": ["string", "null"], "format": "date-time"},
                    "fleet_size": {"type": "integer"},
                    "version": {"type": "integer"},
                },
            },
        },
    },
    "ControlError": {
        "type": "object",
        "properties": {"error": {"type": "string"}},
        "required": ["error"],
    },
}

_STATE = {"200": {"description": "The switches after the call.", **_json(_ref("ControlState"))}}
_FAILURES = {
    "400": {"description": "Bad input; nothing changed.", **_json(_ref("ControlError"))},
    "409": {
        "description": "Changes are refused here (e.g. --workers without --control).",
        **_json(_ref("ControlError")),
    },
    "503": {
        "description": "Redis unreachable or its state unreadable; nothing changed.",
        **_json(_ref("ControlError")),
    },
}
_ENDPOINT_NAME = {
    "name": "endpoint",
    "in": "path",
    "required": True,
    "description": "Endpoint name, URL-encoded (e.g. `GET%20%2Ftitles%2F%7Bid%7D`).",
    "schema": {"type": "string", "maxLength": 200},
}


def control_openapi() -> dict[str, Any]:
    """``{"paths": ..., "schemas": ...}`` for the control routes."""
    paths = {
        "/api/v1/control": {
            "get": {
                "summary": "The runtime switches, the values in force, the connection to Redis.",
                "responses": _STATE,
            },
            "put": {
                "summary": "Change some switches (fleet-wide with --control redis://…).",
                "requestBody": {"required": True, **_json(_ref("ControlChange"))},
                "responses": {**_STATE, **_FAILURES},
            },
        },
        "/api/v1/control/endpoints/{endpoint}": {
            "put": {
                "summary": "Switch mirroring of one endpoint on or off.",
                "parameters": [_ENDPOINT_NAME],
                "requestBody": {
                    "required": True,
                    **_json(
                        {
                            "type": "object",
                            "required": ["mirror"],
                            "additionalProperties": False,
                            "properties": {"mirror": {"type": "boolean"}},
                        }
                    ),
                },
                "responses": {**_STATE, **_FAILURES},
            },
            "delete": {
                "summary": "Clear one endpoint's override (its rule decides again).",
                "parameters": [_ENDPOINT_NAME],
                "responses": {**_STATE, **_FAILURES},
            },
        },
    }
    return {"paths": paths, "schemas": _SCHEMAS}
