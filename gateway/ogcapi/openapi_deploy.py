"""The OpenAPI description of OGC API - Processes Part 2 (deploy, replace, undeploy).

Merged into the document by :func:`gateway.ogcapi.openapi_paths.add_gateway_api`:
``POST`` joins pygeoapi's ``/processes`` item, ``PUT``/``DELETE`` go on a generic
``/processes/{processId}`` item, and ``/processes/{processId}/package`` is new.
These operations need a token even though ``/processes`` and
``/processes/{id}`` are public discovery paths (:data:`AUTHENTICATED_OPERATIONS`).
"""

from __future__ import annotations

from typing import Any

from gateway.apppkg.body import CWL_TYPES, OGCAPPPKG

#: Operations on public paths that still need an access token.
AUTHENTICATED_OPERATIONS = frozenset(
    {"deployProcess", "replaceProcess", "undeployProcess", "getProcessPackage"}
)
_PROCESS_ID = {
    "name": "processId",
    "in": "path",
    "required": True,
    "description": "Identifier of a deployed process",
    "schema": {"type": "string"},
}
_W = {
    "name": "w",
    "in": "query",
    "required": False,
    "description": "The process of a CWL $graph document to deploy (default: main)",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
}
_PACKAGE = {"type": "object", "description": "An OGC application package or a CWL document"}


def _body() -> dict[str, Any]:
    types = (OGCAPPPKG, *CWL_TYPES)
    return {
        "required": True,
        "description": "The application package: ogcapppkg JSON, or CWL as YAML or JSON",
        "content": {
            t: {"schema": _PACKAGE if t.endswith("json") else {"type": "string"}} for t in types
        },
    }


def deploy_paths(problem: Any) -> dict[str, dict[str, Any]]:
    """Operations by path; ``problem`` builds a problem-document response."""
    refused = {
        "400": problem("The package is not valid CWL, or asks for what this server refuses"),
        "403": problem(
            "The caller lacks hpc-deployer, does not own the process, or it is built in"
        ),
        "413": problem("The package is too large"),
        "415": problem("Not an application package media type"),
    }
    return {
        "/processes": {
            "post": {
                "summary": "Deploy a process from an OGC application package (CWL)",
                "tags": ["server"],
                "operationId": "deployProcess",
                "parameters": [_W],
                "requestBody": _body(),
                "responses": {
                    "201": {
                        "description": "Deployed: its summary, and Location of its description",
                        "headers": {"Location": {"schema": {"type": "string"}}},
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **refused,
                    "409": problem("A process with this id exists"),
                },
            }
        },
        "/processes/{processId}": {
            "put": {
                "summary": "Replace a deployed process (jobs already accepted keep the old one)",
                "tags": ["server"],
                "operationId": "replaceProcess",
                "parameters": [_PROCESS_ID, _W],
                "requestBody": _body(),
                "responses": {
                    "204": {"description": "Replaced"},
                    **refused,
                    "404": problem("No such process"),
                },
            },
            "delete": {
                "summary": "Undeploy a deployed process",
                "tags": ["server"],
                "operationId": "undeployProcess",
                "parameters": [_PROCESS_ID],
                "responses": {
                    "204": {"description": "Undeployed"},
                    "403": refused["403"],
                    "404": problem("No such process"),
                },
            },
        },
        "/processes/{processId}/package": {
            "get": {
                "summary": "The application package of a deployed process",
                "tags": ["server"],
                "operationId": "getProcessPackage",
                "parameters": [_PROCESS_ID],
                "responses": {
                    "200": {
                        "description": "CWL as JSON, or ogcapppkg when asked for (Accept)",
                        "content": {
                            CWL_TYPES[2]: {"schema": _PACKAGE},
                            OGCAPPPKG: {"schema": _PACKAGE},
                        },
                    },
                    "404": problem("No such deployed process (built-in processes have none)"),
                },
            }
        },
    }


def add_deploy_paths(oas: dict[str, Any], problem: Any) -> None:
    """Merge the Part 2 operations into ``oas['paths']``."""
    paths = oas["paths"]
    for path, operations in deploy_paths(problem).items():
        paths.setdefault(path, {}).update(operations)
