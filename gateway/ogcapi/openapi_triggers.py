"""The ``/triggers`` resource in the OpenAPI document (see :mod:`gateway.triggers.routes`).

Added to pygeoapi's document by :func:`gateway.ogcapi.config.openapi_document`
before the security requirements are applied, so every operation here needs a
token when authentication is on.
"""

from __future__ import annotations

from typing import Any

from gateway.ogcapi.openapi_paths import JSON, _json, _path, _query, problem

TAG = {"name": "triggers", "description": "Rules that start jobs on events (docs/triggers.md)"}

_OBJECT: dict[str, Any] = {"type": "object"}
_ID = _path("triggerId", "Identifier of a trigger")
_MISSING = problem("No such trigger (or not the caller's)")
_RULE_BODY = {
    "description": "The rule: title, process, inputs, source, criteria (docs/triggers.md)",
    "required": True,
    "content": {JSON: {"schema": _OBJECT}},
}
_BODY_ERRORS = {
    "400": problem("Invalid rule: the reason names the member or input"),
    "413": problem("The body is too large"),
    "415": problem("The body must be application/json"),
}
_TRIGGER = _json("The trigger, its feed state and activations", _OBJECT)


def trigger_paths() -> dict[str, Any]:
    """Path items of ``/triggers`` and below."""
    return {
        "/triggers": {
            "get": {
                "summary": "The caller's triggers (hpc-admin: everyone's)",
                "tags": ["triggers"],
                "operationId": "getTriggers",
                "parameters": [
                    _query("f", "Response format", {"type": "string", "enum": ["json", "html"]})
                ],
                "responses": {
                    "200": {
                        "description": "The triggers",
                        "content": {
                            JSON: {"schema": _OBJECT},
                            "text/html": {"schema": {"type": "string"}},
                        },
                    },
                },
            },
            "post": {
                "summary": "Create a trigger (checked in full: 400 for a rule that would not run)",
                "tags": ["triggers"],
                "operationId": "createTrigger",
                "requestBody": _RULE_BODY,
                "responses": {
                    "201": _TRIGGER,
                    **_BODY_ERRORS,
                    "403": problem("The caller has no HPC account"),
                },
            },
        },
        "/triggers/{triggerId}": {
            "get": {
                "summary": "One trigger with its activations and their jobs",
                "tags": ["triggers"],
                "operationId": "getTrigger",
                "parameters": [_ID],
                "responses": {"200": _TRIGGER, "404": _MISSING},
            },
            "put": {
                "summary": "Replace a trigger's rule",
                "tags": ["triggers"],
                "operationId": "replaceTrigger",
                "parameters": [_ID],
                "requestBody": _RULE_BODY,
                "responses": {"200": _TRIGGER, **_BODY_ERRORS, "404": _MISSING},
            },
            "delete": {
                "summary": "Delete a trigger (its jobs stay)",
                "tags": ["triggers"],
                "operationId": "deleteTrigger",
                "parameters": [_ID],
                "responses": {"204": {"description": "Deleted"}, "404": _MISSING},
            },
        },
        "/triggers/{triggerId}/activations": {
            "get": {
                "summary": "A trigger's activations: event, outcome, job",
                "tags": ["triggers"],
                "operationId": "getTriggerActivations",
                "parameters": [_ID],
                "responses": {"200": _json("The activations", _OBJECT), "404": _MISSING},
            },
            "post": {
                "summary": "Activate a trigger by hand with an area and a time",
                "tags": ["triggers"],
                "operationId": "activateTrigger",
                "parameters": [_ID],
                "requestBody": {
                    "description": "time (RFC 3339 with zone) and bbox, or lon and lat; eventId",
                    "required": True,
                    "content": {JSON: {"schema": _OBJECT}},
                },
                "responses": {
                    "201": _json("The new activation (outcome submitted or refused)", _OBJECT),
                    "200": _json("The activation already made for this eventId", _OBJECT),
                    "400": problem("Invalid activation"),
                    "404": _MISSING,
                    "413": problem("The body is too large"),
                    "415": problem("The body must be application/json"),
                },
            },
        },
    }
