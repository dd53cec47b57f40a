"""The pygeoapi configuration and OpenAPI document, generated from our settings.

pygeoapi normally reads a YAML file named by an environment variable at
import time (``pygeoapi.flask_app``); the gateway instead builds the config
dict here from :class:`~gateway.settings.Settings` and the process registry and
hands it to ``pygeoapi.api.API(config, openapi)``. Every process is a resource
of type ``process`` whose processor is :class:`gateway.ogcapi.processor.HpcProcessor`,
and the manager is :class:`gateway.ogcapi.manager.GatewayManager`; both carry
the services token (see :mod:`gateway.ogcapi.plugin_context`).

The OpenAPI document is pygeoapi's generator output, corrected: paths we do
not serve (``/collections``) are removed, the job-list query parameters, the
dismiss response, the ``Prefer`` header of execution and the published-outputs
path are described as we implement them; the gateway's own routes and the
security schemes are added by :mod:`gateway.ogcapi.openapi_paths`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pygeoapi.openapi import get_oas

from gateway.jobs.states import OGC_STATUSES
from gateway.ogcapi.job_filters import MAX_DURATION_SECONDS
from gateway.ogcapi.openapi_contract import make_self_contained
from gateway.ogcapi.openapi_paths import add_gateway_api, problem
from gateway.ogcapi.openapi_triggers import TAG as TRIGGERS_TAG
from gateway.ogcapi.openapi_triggers import trigger_paths
from gateway.ogcapi.plugin_context import TOKEN_KEY, processor_entry
from gateway.paging import DEFAULT_JOB_LIMIT, limit_schema
from gateway.settings import Settings
from processes.registry import ProcessRegistry

MANAGER_PLUGIN = "gateway.ogcapi.manager.GatewayManager"
_OAPIP = "https://schemas.opengis.net/ogcapi/processes/part1/1.0/openapi"
_SERVED_PREFIXES = ("/openapi", "/conformance", "/processes", "/jobs")
#: Our overrides of pygeoapi's HTML templates (searched before pygeoapi's own): the
#: job pages, whose originals put job data into inline scripts (docs/security.md).
TEMPLATES = Path(__file__).resolve().parent / "templates"


def pygeoapi_config(settings: Settings, registry: ProcessRegistry, token: str) -> dict[str, Any]:
    """The config dict pygeoapi's ``API`` is constructed from."""
    server = settings.server
    resources: dict[str, Any] = {
        definition.id: {"type": "process", "processor": processor_entry(definition.id, token)}
        for definition in registry
        if registry.is_builtin(definition.id)  # deployed ones: GatewayManager.processes
    }
    return {
        "server": {
            "url": server.base_url.rstrip("/"),
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "language": "en-US",
            "pretty_print": False,
            # Deployed processes come and go, so the list is not cut at the built-in count.
            "limits": {"default_items": 100, "max_items": 1000},
            "map": {"url": "", "attribution": ""},
            "manager": {"name": MANAGER_PLUGIN, "connection": None, TOKEN_KEY: token},
            "templates": {"path": str(TEMPLATES)},
        },
        # pygeoapi would call logging.basicConfig with this; register_ogcapi
        # prevents it (logging belongs to the application).
        "logging": {"level": "WARNING"},
        "metadata": {
            "identification": {
                "title": server.title,
                "description": server.description,
                "keywords": ["OGC API - Processes", "HPC", "Slurm", "Earth observation"],
                "keywords_type": "theme",
                "terms_of_service": "",
                "url": server.base_url,
            },
            "license": {"name": "", "url": ""},
            "provider": {"name": server.title, "url": server.base_url},
            "contact": {"name": server.title, "email": "", "url": server.base_url},
        },
        "resources": resources,
    }


def openapi_document(
    config: dict[str, Any], settings: Settings, public_paths: Iterable[str]
) -> dict[str, Any]:
    """pygeoapi's OpenAPI 3.0 document, corrected to describe everything we serve.

    ``public_paths`` are the paths served without a token (the same list the
    authentication hook gets), which the security requirements follow.
    """
    oas: dict[str, Any] = get_oas(config)
    paths: dict[str, Any] = oas["paths"]
    for path in list(paths):
        if not _served(path):
            del paths[path]
    _describe_jobs(paths)
    _describe_execution(paths)
    paths.update(trigger_paths())
    oas.setdefault("tags", []).append(dict(TRIGGERS_TAG))
    add_gateway_api(oas, settings, public_paths)
    _prune_unused(oas)
    make_self_contained(oas)
    return oas


def _served(path: str) -> bool:
    return path == "/" or any(path == p or path.startswith(p + "/") for p in _SERVED_PREFIXES)


def _param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
        "style": "form",
        "explode": False,
    }


def _describe_jobs(paths: dict[str, Any]) -> None:
    status_schema = {"$ref": f"{_OAPIP}/schemas/statusInfo.yaml"}
    paths["/jobs"]["get"]["parameters"] = [
        _param(
            "limit",
            "Largest number of jobs in one page.",
            limit_schema(DEFAULT_JOB_LIMIT),
        ),
        _param(
            "processID",
            "Only jobs of these processes (repeat or comma-separate).",
            {"type": "array", "items": {"type": "string"}},
        ),
        _param(
            "status",
            "Only jobs with these statuses (repeat or comma-separate).",
            {
                "type": "array",
                "items": {"type": "string", "enum": list(OGC_STATUSES)},
            },
        ),
        _param(
            "type",
            "Only jobs of these types (this server has type 'process' only).",
            {"type": "array", "items": {"type": "string"}},
        ),
        _param(
            "datetime",
            "Only jobs created at this RFC 3339 date-time or date (the whole second, "
            "millisecond or day it names) or in this interval: a/b, ../b or a/.. "
            "(the schema gives the single instant or date; intervals are accepted too).",
            {"type": "string", "anyOf": [{"format": "date-time"}, {"format": "date"}]},
        ),
        _param(
            "minDuration",
            "Only jobs that ran at least this many seconds (started to finished, or to now).",
            {"type": "integer", "minimum": 0, "maximum": MAX_DURATION_SECONDS},
        ),
        _param(
            "maxDuration",
            "Only jobs that ran at most this many seconds (never-started jobs never match).",
            {"type": "integer", "minimum": 0, "maximum": MAX_DURATION_SECONDS},
        ),
        _param("next", "Opaque page cursor taken from a rel=next link.", {"type": "string"}),
        {"$ref": "#/components/parameters/f"},
    ]
    paths["/jobs"]["get"]["responses"]["400"] = problem("Invalid query parameter")
    job = paths["/jobs/{jobId}"]
    job["delete"]["summary"] = "Dismiss a job: cancel it, or remove it once finished"
    job["delete"]["description"] = (
        "An accepted or running job is cancelled (its Slurm job too) and keeps the "
        "status dismissed. A finished job (successful, failed or already dismissed) "
        "is removed: afterwards the job, its results and its output files answer 404, "
        "and its workspace and published outputs are deleted. Usage accounting is kept."
    )
    job["delete"]["responses"] = {
        "200": {
            "description": "The job's status info, with status dismissed",
            "content": {"application/json": {"schema": status_schema}},
        },
        "404": problem("No such job"),
    }
    paths["/jobs/{jobId}/results"]["get"]["responses"]["500"] = problem("The job failed")
    paths["/jobs/{jobId}/outputs/{fileName}"] = {
        "get": {
            "summary": "Download a published output file of a job",
            "tags": ["jobs"],
            "operationId": "getJobOutputFile",
            "parameters": [
                {"name": "jobId", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "fileName", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {"description": "The file, with its media type"},
                "302": {"description": "The file is in S3: a fresh link to it (Location)"},
                "404": problem("No such job or file"),
            },
        }
    }


#: The ``Prefer`` request header of execution, as :func:`gateway.ogcapi.routes_jobs.execute`
#: honours it (pygeoapi allows exactly ``respond-async``).
_PREFER = {
    "in": "header",
    "name": "Prefer",
    "required": False,
    "description": (
        "RFC 7240 preferences. respond-async: answer 201 at once with the job's "
        "status and Location. wait=N: wait at most N seconds (bounded by the "
        "server's synchronous-execution limit) for the results before answering "
        "201 like respond-async. respond-async wins when both are given. "
        "Preference-Applied names what was honoured."
    ),
    "schema": {"type": "string"},
    "examples": {
        "async": {"value": "respond-async"},
        "wait": {"value": "wait=10"},
    },
}


def _describe_execution(paths: dict[str, Any]) -> None:
    for path, item in paths.items():
        if not path.endswith("/execution"):
            continue
        item["post"]["parameters"] = [
            p for p in item["post"].get("parameters", []) if p.get("name") != "Prefer"
        ] + [dict(_PREFER)]
        responses = item["post"]["responses"]
        responses["204"] = {"description": "raw response, outputs by reference (Link headers)"}
        responses["400"] = problem("Invalid execute request or inputs")
        responses["413"] = problem("Request body too large")
        responses["415"] = problem("The execute request must be application/json")


def _prune_unused(oas: dict[str, Any]) -> None:
    """Drop the component parameters and tags only pygeoapi's other APIs use."""
    text = json.dumps(oas["paths"])
    parameters = oas.get("components", {}).get("parameters", {})
    for name in list(parameters):
        if f"#/components/parameters/{name}" not in text:
            del parameters[name]
    used_tags = {
        t for item in oas["paths"].values() for op in item.values() for t in op.get("tags", [])
    }
    oas["tags"] = [tag for tag in oas.get("tags", []) if tag.get("name") in used_tags]
