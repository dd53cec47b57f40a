"""The gateway's own routes in the OpenAPI document, and how callers authenticate.

pygeoapi's generator (see :mod:`gateway.ogcapi.config`) describes the OGC API -
Processes paths only. This module adds every other route the app serves --
quotations, accounting, metrics, the user-sync admin API, the STAC catalog and
WPS -- and, when authentication is on (``auth.mode: oidc``), the bearer/OpenID
Connect security schemes: every operation needs a token except those on the
public paths, which say ``security: []``.

``tests/unit/test_openapi_routes.py`` checks that every route of the Flask
app (``app.url_map``) appears in ``/openapi``, so a new route without a
description fails the tests instead of going unnoticed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from gateway.accounting.reports import GROUP_KEYS
from gateway.http.security import PublicPaths
from gateway.ogcapi.openapi_deploy import AUTHENTICATED_OPERATIONS, add_deploy_paths
from gateway.paging import DEFAULT_AUDIT_LIMIT, DEFAULT_STAC_LIMIT, limit_schema
from gateway.settings import Settings

JSON = "application/json"
PROBLEM = "application/problem+json"
XML = "application/xml"
#: What the WPS facade answers (gateway.wps.xml.XML_MEDIA_TYPE, without its charset).
WPS_XML = "text/xml"
_OAPIP = "https://schemas.opengis.net/ogcapi/processes/part1/1.0/openapi"
_REF = "#/components/schemas/"
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

#: Tags of the operations added here (pygeoapi's tags describe the rest).
TAGS: tuple[dict[str, str], ...] = (
    {"name": "accounting", "description": "Quotes, usage reports, budgets (core-hours)"},
    {"name": "metrics", "description": "Prometheus exposition of jobs and core-hours"},
    {"name": "sites", "description": "The HPC sites jobs are routed to, and their health"},
    {"name": "admin", "description": "User synchronisation (role hpc-admin)"},
    {"name": "stac", "description": "STAC Catalog and Items of published results"},
    {"name": "wps", "description": "OGC WPS 1.0.0 and 2.0.0 on the same jobs"},
)


# -- small builders ---------------------------------------------------------------


def problem(description: str) -> dict[str, Any]:
    """A response carrying an OGC exception (RFC 7807 problem) document."""
    return {
        "description": description,
        "content": {PROBLEM: {"schema": {"$ref": f"{_OAPIP}/schemas/exception.yaml"}}},
    }


def _json(description: str, schema: dict[str, Any], media_type: str = JSON) -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _query(
    name: str, description: str, schema: dict[str, Any], *, required: bool = False
) -> dict[str, Any]:
    """A query parameter; arrays are repeatable or comma-separated (form, not exploded)."""
    param: dict[str, Any] = {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }
    if schema.get("type") == "array":
        param.update(style="form", explode=False)
    return param


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


_STRING = {"type": "string"}
_STRINGS = {"type": "array", "items": _STRING}
_SCOPE = {"type": "string", "enum": ["user", "project"]}
#: Budget periods (gateway.accounting.periods.Period; daily, monthly... are accepted too).
_PERIOD = {"type": "string", "enum": ["day", "week", "month", "quarter", "year", "total"]}
#: An RFC 3339 date-time or full-date.
_WHEN = {"type": "string", "anyOf": [{"format": "date-time"}, {"format": "date"}]}
_FLAG = {"type": "boolean", "default": False}
_JOB_ID = _path("jobId", "Local identifier of a job")
_ADMIN_ONLY = problem("The caller lacks the role hpc-admin")
_DISABLED = problem("Accounting is not enabled on this server")


# -- accounting -------------------------------------------------------------------


def _report_filters() -> list[dict[str, Any]]:
    return [
        _query("from", "Start: ISO date or datetime (UTC unless an offset is given)", _WHEN),
        _query("to", "End, exclusive; a date includes that whole day", _WHEN),
        _query("user", "Only these HPC logins (admins; users see their own)", _STRINGS),
        _query("project", "Only these projects (Slurm accounts)", _STRINGS),
        _query("process", "Only these processes", _STRINGS),
        _query("site", "Only these sites", _STRINGS),
    ]


def _accounting_paths() -> dict[str, Any]:
    execute = {"$ref": f"{_OAPIP}/schemas/execute.yaml"}
    group_by = {
        "type": "array",
        "items": {
            "type": "string",
            "enum": list(GROUP_KEYS),
        },
    }
    budget_key = [
        {**_path("scope", "user or project"), "schema": _SCOPE},
        _path("name", "HPC login, project, or * (the default of the scope)"),
        {**_path("period", "Budget period"), "schema": _PERIOD},
    ]
    return {
        "/processes/{processId}/quotations": {
            "post": {
                "summary": "Quote an execution: estimated core-hours and cost, nothing runs",
                "tags": ["accounting"],
                "operationId": "quoteExecution",
                "parameters": [_path("processId", "Identifier of a process")],
                "requestBody": {
                    "description": "The execute request that would be sent for execution",
                    "required": True,
                    "content": {JSON: {"schema": execute}},
                },
                "responses": {
                    "200": _json("The quote and the caller's budget standing", _ref("gwQuotation")),
                    "400": problem("Invalid execute request or inputs"),
                    "404": problem("No such process, or accounting disabled"),
                    "415": problem("The execute request must be application/json"),
                },
            }
        },
        "/accounting/usage": {
            "get": {
                "summary": "Usage report: core-hours and cost of finished jobs",
                "tags": ["accounting"],
                "operationId": "getUsage",
                "parameters": [
                    *_report_filters(),
                    _query("groupBy", "Grouping keys (repeat or comma-separate)", group_by),
                    _query("f", "Output format", {"type": "string", "enum": ["json", "csv"]}),
                ],
                "responses": {
                    "200": {
                        "description": "The report",
                        "content": {
                            JSON: {"schema": _ref("gwUsageReport")},
                            "text/csv": {"schema": {"type": "string"}},
                        },
                    },
                    "400": problem("Invalid query parameter"),
                    "403": problem("Another user's usage, or no HPC account"),
                    "404": _DISABLED,
                },
            }
        },
        "/accounting/dashboard": {
            "get": {
                "summary": "HTML dashboard of usage (last 30 days by default)",
                "tags": ["accounting"],
                "operationId": "getUsageDashboard",
                "parameters": _report_filters(),
                "responses": {
                    "200": _json("The dashboard page", {"type": "string"}, "text/html"),
                    "400": problem("Invalid query parameter"),
                    "403": problem("Another user's usage, or no HPC account"),
                    "404": _DISABLED,
                },
            }
        },
        "/accounting/budgets": {
            "get": {
                "summary": "Budgets and their current standing",
                "tags": ["accounting"],
                "operationId": "listBudgets",
                "parameters": [
                    _query("scope", "Only this scope", {**_STRING, "enum": ["user", "project"]}),
                    _query("name", "Only budgets of this user or project", {"type": "string"}),
                ],
                "responses": {
                    "200": _json(
                        "The budgets",
                        {
                            "type": "object",
                            "required": ["budgets"],
                            "properties": {"budgets": {"type": "array", "items": _ref("gwBudget")}},
                        },
                    ),
                    "400": problem("Invalid query parameter"),
                    "403": _ADMIN_ONLY,
                    "404": _DISABLED,
                },
            },
            "put": {
                "summary": "Create or replace a budget",
                "tags": ["accounting"],
                "operationId": "setBudget",
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _ref("gwBudgetRequest")}},
                },
                "responses": {
                    "200": _json("The budget as stored", _ref("gwBudget")),
                    "400": problem("Invalid budget"),
                    "403": _ADMIN_ONLY,
                    "404": _DISABLED,
                },
            },
        },
        "/accounting/budgets/{scope}/{name}/{period}": {
            "delete": {
                "summary": "Remove a budget",
                "tags": ["accounting"],
                "operationId": "deleteBudget",
                "parameters": budget_key,
                "responses": {
                    "204": {"description": "Removed"},
                    "400": problem("Invalid scope or period"),
                    "403": _ADMIN_ONLY,
                    "404": problem("No such budget, or accounting disabled"),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (jobs by state, core-hours, scheduler calls)",
                "tags": ["metrics"],
                "operationId": "getMetrics",
                "responses": {
                    "200": _json(
                        "Prometheus text exposition format",
                        {"type": "string"},
                        "text/plain; version=0.0.4",
                    ),
                    "401": problem("The scrape bearer token is missing or wrong"),
                    "404": problem("Metrics or accounting disabled"),
                },
            }
        },
        "/status/sites": {
            "get": {
                "summary": "Every HPC site: enabled, partitions, data sources, latest health probe",
                "tags": ["sites"],
                "operationId": "getSiteStatus",
                "parameters": [
                    _query("f", "Response format", {**_STRING, "enum": ["json", "html"]}),
                ],
                "responses": {
                    "200": _json(
                        "The sites (docs/federation.md)",
                        {
                            "type": "object",
                            "required": ["sites"],
                            "properties": {"sites": {"type": "array", "items": {"type": "object"}}},
                        },
                    ),
                },
            }
        },
    }


# -- admin, STAC, WPS ---------------------------------------------------------------


def _admin_paths() -> dict[str, Any]:
    return {
        "/admin/users/sync": {
            "post": {
                "summary": "Synchronise portal users to HPC logins and Slurm accounts",
                "tags": ["admin"],
                "operationId": "syncUsers",
                "parameters": [
                    _query("dryRun", "Only plan: change nothing", _FLAG),
                    _query("force", "Apply even a plan over the safety limits", _FLAG),
                ],
                "responses": {
                    "200": _json("The sync report", _ref("gwSyncReport")),
                    "403": _ADMIN_ONLY,
                    "503": problem("The directory or the cluster could not be reached"),
                },
            }
        },
        "/admin/users": {
            "get": {
                "summary": "Portal user to HPC login mappings",
                "tags": ["admin"],
                "operationId": "listUserMappings",
                "responses": {
                    "200": _json("The mappings", {"type": "array", "items": _ref("gwUserMapping")}),
                    "403": _ADMIN_ONLY,
                },
            }
        },
        "/admin/users/{username}/relink": {
            "post": {
                "summary": "Give a Keycloak account created again its HPC login, jobs and usage",
                "tags": ["admin"],
                "operationId": "relinkUser",
                "parameters": [
                    _path("username", "The portal (Keycloak) username"),
                    _query("dryRun", "Only say what would move", _FLAG),
                ],
                "responses": {
                    "200": _json("What moved (or would move)", _ref("gwRelink")),
                    "403": _ADMIN_ONLY,
                    "409": problem("Refused: the old account still exists, or nothing to move"),
                    "503": problem("Keycloak could not be read"),
                },
            }
        },
        "/admin/users/audit": {
            "get": {
                "summary": "Recent user-sync audit entries, newest first",
                "tags": ["admin"],
                "operationId": "listUserSyncAudit",
                "parameters": [
                    _query(
                        "limit",
                        "Largest number of entries",
                        limit_schema(DEFAULT_AUDIT_LIMIT),
                    )
                ],
                "responses": {
                    "200": _json("The entries", {"type": "array", "items": {"type": "object"}}),
                    "400": problem("Invalid limit"),
                    "403": _ADMIN_ONLY,
                },
            }
        },
    }


def _stac_paths() -> dict[str, Any]:
    return {
        "/stac/catalog.json": {
            "get": {
                "summary": "STAC Catalog of the caller's published results, newest first",
                "tags": ["stac"],
                "operationId": "getStacCatalog",
                "parameters": [
                    _query(
                        "limit",
                        "Largest number of item links",
                        limit_schema(DEFAULT_STAC_LIMIT),
                    ),
                    _query("next", "Opaque page cursor taken from a rel=next link", _STRING),
                ],
                "responses": {
                    "200": _json("A STAC Catalog", {"type": "object"}),
                    "400": problem("Invalid query parameter"),
                },
            }
        },
        "/stac/items/{jobId}.json": {
            "get": {
                "summary": "STAC Item of one successful job's published results",
                "tags": ["stac"],
                "operationId": "getStacItem",
                "parameters": [_JOB_ID],
                "responses": {
                    "200": _json("A STAC Item", {"type": "object"}, "application/geo+json"),
                    "404": problem("No such job, or it has no published results"),
                },
            }
        },
    }


def _wps_paths() -> dict[str, Any]:
    xml = {"type": "string"}
    ows_error = {
        "description": "OWS ExceptionReport (OWS 1.1 for WPS 1.0.0, OWS 2.0 for WPS 2.0.0)",
        "content": {WPS_XML: {"schema": xml}},
    }
    answer = {
        "description": "The WPS response document (GetResult in raw mode: the output itself)",
        "content": {WPS_XML: {"schema": xml}},
    }
    kvp = [
        _query("service", "Always WPS", {"type": "string", "enum": ["WPS"]}, required=True),
        _query(
            "request",
            "The WPS operation",
            {
                "type": "string",
                "enum": [
                    "GetCapabilities",
                    "DescribeProcess",
                    "Execute",
                    "GetStatus",
                    "GetResult",
                    "Dismiss",
                ],
            },
            required=True,
        ),
        _query(
            "version",
            "WPS version; required by every request but GetCapabilities (WPS 1.0.0 "
            "section 7.2.2 and WPS 2.0: MissingParameterValue, 400, without it)",
            {"type": "string", "enum": ["1.0.0", "2.0.0"]},
        ),
        _query("AcceptVersions", "GetCapabilities: versions the client takes", _STRINGS),
        _query("identifier", "Process identifier(s), or 'all'", _STRINGS),
        _query("jobId", "GetStatus, GetResult, Dismiss (WPS 2.0.0)", {"type": "string"}),
        _query("DataInputs", "Execute (WPS 1.0.0 KVP): id=value;id=value", {"type": "string"}),
    ]
    not_supported = {
        **ows_error,
        "description": "OperationNotSupported / OptionNotSupported (OWS: HTTP 501), e.g. "
        "Dismiss or GetStatus asked of WPS 1.0.0",
    }
    responses = {
        "200": answer,
        "400": ows_error,
        "403": ows_error,
        "404": ows_error,
        "500": ows_error,
        "501": not_supported,
        "503": ows_error,
    }
    return {
        "/wps": {
            "get": {
                "summary": "WPS request in key-value-pair encoding",
                "description": _WPS_AUTH,
                "tags": ["wps"],
                "operationId": "wpsGet",
                "parameters": kvp,
                "responses": responses,
            },
            "post": {
                "summary": "WPS request as an XML document (or a form-encoded KVP body)",
                "description": _WPS_AUTH,
                "tags": ["wps"],
                "operationId": "wpsPost",
                "requestBody": {
                    "required": True,
                    "content": {
                        XML: {"schema": xml},
                        "text/xml": {"schema": xml},
                        "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                    },
                },
                "responses": {**responses, "413": ows_error, "415": ows_error},
            },
        },
        "/wps/status/{jobId}": {
            "get": {
                "summary": "WPS 1.0.0 statusLocation: the job's live ExecuteResponse",
                "tags": ["wps"],
                "operationId": "wpsStatus",
                "parameters": [
                    _JOB_ID,
                    _query("lineage", "Echo inputs and output definitions", _FLAG),
                ],
                "responses": {**responses, "200": answer},
            }
        },
    }


# -- schemas of the gateway's JSON documents ----------------------------------------


def _numbers(*names: str) -> dict[str, Any]:
    return {name: {"type": "number"} for name in names}


def _strings(*names: str) -> dict[str, Any]:
    return {name: {"type": "string"} for name in names}


def schemas() -> dict[str, Any]:
    """``components.schemas`` entries of the documents described here (prefix ``gw``)."""
    budget_status = {
        "type": "object",
        "properties": {
            **_strings("scope", "name", "budget", "period", "window", "window_start"),
            "window_end": {"type": "string", "nullable": True},
            **_numbers(
                "limit_core_hours",
                "used_core_hours",
                "reserved_core_hours",
                "quote_core_hours",
                "remaining_core_hours",
            ),
            "exceeded": {"type": "boolean"},
        },
    }
    report_row = {
        "type": "object",
        "description": "Grouping keys (as requested) and the sums",
        "properties": {
            "jobs": {"type": "integer"},
            "cpu_seconds": {"type": "integer"},
            "elapsed_seconds": {"type": "integer"},
            **_numbers("core_hours", "quoted_core_hours", "cost"),
        },
        "additionalProperties": True,
    }
    return {
        "gwQuotation": {
            "type": "object",
            "required": ["process_id", "core_hours", "cost", "currency", "budgets", "links"],
            "properties": {
                **_strings("process_id", "process_version", "site", "partition", "project"),
                **_strings("currency", "created"),
                "cores": {"type": "integer"},
                "memory_mb": {"type": "integer"},
                "walltime_limit_seconds": {"type": "integer"},
                "estimated_seconds": {"type": "integer"},
                **_numbers("core_hours", "max_core_hours", "billing_units"),
                **_numbers("price_per_core_hour", "cost", "max_cost"),
                "basis": {"type": "object"},
                "budgets": {"type": "array", "items": budget_status},
                "links": {"type": "array", "items": {"type": "object"}},
            },
        },
        "gwUsageReport": {
            "type": "object",
            "required": ["rows", "total"],
            "properties": {
                "from": {"type": "string", "nullable": True},
                "to": {"type": "string", "nullable": True},
                "groupBy": {"type": "array", "items": {"type": "string"}},
                "filters": {"type": "object", "additionalProperties": _STRINGS},
                "currency": {"type": "string"},
                "rows": {"type": "array", "items": report_row},
                "total": report_row,
            },
        },
        "gwBudgetRequest": {
            "type": "object",
            "required": ["scope", "name", "limit_core_hours"],
            "properties": {
                "scope": _SCOPE,
                "name": {
                    "type": "string",
                    "pattern": r"\S",
                    "description": "HPC login, project, or * (surrounding blanks dropped)",
                },
                "period": {**_PERIOD, "default": "month"},
                "limit_core_hours": {"type": "number", "minimum": 0},
                "note": {"type": "string"},
            },
        },
        "gwBudget": {
            "type": "object",
            "properties": {
                **_strings("scope", "name", "period", "note", "updated", "updated_by"),
                "limit_core_hours": {"type": "number"},
                "status": budget_status,
            },
        },
        "gwSyncReport": {
            "type": "object",
            "required": ["run_id", "dry_run", "ok", "plan", "results"],
            "properties": {
                "run_id": {"type": "string"},
                "dry_run": {"type": "boolean"},
                "ok": {"type": "boolean"},
                "plan": {"type": "object"},
                "results": {"type": "array", "items": {"type": "object"}},
            },
        },
        "gwRelink": {
            "type": "object",
            "required": ["username", "hpc_login", "old_sub", "new_sub", "rows", "dry_run"],
            "properties": {
                **_strings("username", "hpc_login", "old_sub", "new_sub"),
                "rows": {"type": "object", "additionalProperties": {"type": "integer"}},
                "dry_run": {"type": "boolean"},
            },
        },
        "gwUserMapping": {
            "type": "object",
            "properties": {
                **_strings("sub", "username", "hpc_login", "status", "updated"),
                "accounts": {"type": "array", "items": {"type": "string"}},
            },
        },
    }


def gateway_paths() -> dict[str, Any]:
    """Path items of every route the gateway serves beyond pygeoapi's OGC API paths."""
    return {**_accounting_paths(), **_admin_paths(), **_stac_paths(), **_wps_paths()}


# -- security -----------------------------------------------------------------------


def operations(oas: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    """(path, operation) for every operation of the document."""
    for path, item in oas.get("paths", {}).items():
        for method in _METHODS:
            if isinstance(item.get(method), dict):
                yield path, item[method]


def _example_path(template: str) -> str:
    """A concrete path of an OpenAPI path template (public-path checks work on paths)."""
    return re.sub(r"\{[^}/]+\}", "x", template)


#: How the one WPS endpoint is authenticated (see apply_security).
_WPS_AUTH = (
    "GetCapabilities and DescribeProcess are public discovery (unless auth.public_discovery "
    "is off); Execute, GetStatus, GetResult and Dismiss need an access token."
)


def _unauthorised(path: str) -> dict[str, Any]:
    """The 401 of an operation: an OWS exception report under /wps, else a problem."""
    text = "A valid access token is required"
    if path == "/wps" or path.startswith("/wps/"):
        return {"description": text, "content": {WPS_XML: {"schema": {"type": "string"}}}}
    return problem(text)


def apply_security(oas: dict[str, Any], settings: Settings, public_paths: Iterable[str]) -> None:
    """Security schemes and per-operation requirements matching what the app enforces.

    With ``auth.mode: oidc`` every operation needs an access token (bearer, from
    the OpenID Connect provider) except those on public paths; ``/metrics``
    with a scrape token file takes that static bearer token instead. A public
    ``/wps`` (discovery public) takes a token optionally: GetCapabilities and
    DescribeProcess need none, Execute and the job operations do (401 otherwise).
    """
    schemes: dict[str, Any] = {}
    oidc = settings.auth.mode == "oidc"
    public = PublicPaths(public_paths)
    metrics = settings.accounting.metrics
    if oidc:
        issuer = settings.auth.oidc.issuer.rstrip("/")
        schemes["bearerAuth"] = {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": f"An access token issued by {issuer}",
        }
        schemes["oidc"] = {
            "type": "openIdConnect",
            "openIdConnectUrl": f"{issuer}/.well-known/openid-configuration",
        }
        oas["security"] = [{"bearerAuth": []}, {"oidc": []}]
    if metrics.bearer_token_file:
        schemes["metricsToken"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "The static Prometheus scrape token (accounting.metrics)",
        }
    for path, operation in operations(oas):
        is_public = (
            _example_path(path) in public
            and operation.get("operationId") not in AUTHENTICATED_OPERATIONS
        )
        # /wps is one endpoint for every operation: public discovery, token for jobs
        token_optional = is_public and path == "/wps"
        if path == "/metrics" and metrics.bearer_token_file:
            operation["security"] = [{"metricsToken": []}]
        elif oidc and token_optional:
            operation["security"] = [{}, *oas["security"]]
        elif oidc and is_public:
            operation["security"] = []
        if oidc and (token_optional or not is_public):
            operation.setdefault("responses", {}).setdefault("401", _unauthorised(path))
    if schemes:
        oas.setdefault("components", {}).setdefault("securitySchemes", {}).update(schemes)


def add_gateway_api(oas: dict[str, Any], settings: Settings, public_paths: Iterable[str]) -> None:
    """Add the gateway's own paths, schemas, tags and security to pygeoapi's document."""
    oas["paths"].update(gateway_paths())
    add_deploy_paths(oas, problem)
    oas.setdefault("components", {}).setdefault("schemas", {}).update(schemas())
    known = {tag.get("name") for tag in oas.get("tags", [])}
    oas.setdefault("tags", []).extend(dict(t) for t in TAGS if t["name"] not in known)
    apply_security(oas, settings, public_paths)
