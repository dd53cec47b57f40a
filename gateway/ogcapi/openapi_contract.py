"""Make ``/openapi`` a self-contained, truthful contract of what the server answers.

pygeoapi's generator refers to schemas and responses on schemas.opengis.net; a
generated client (or schemathesis) must fetch them, and some do not fit what
this server answers (``/conformance`` was given the landing-page schema). Here,
after the document is assembled (:func:`gateway.ogcapi.config.openapi_document`):

* every remote ``$ref`` becomes a local one: the OGC schemas are served from the
  copy in ``schemas/ogcapi-processes-1.yaml`` (CC-BY 4.0, see its NOTICE), the
  OGC response objects are defined here;
* every operation documents the error answers the server gives (400, 404, 406,
  500, 503... as OGC exception documents, ``application/problem+json``, or HTML
  when the client asked for HTML), and the ``text/html`` variant of pages that
  have one.

``tests/security/test_openapi_fuzz.py`` holds the server to this document.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

_OAPIP = "https://schemas.opengis.net/ogcapi/processes/part1/1.0/openapi"
_FEATURES = "https://schemas.opengis.net/ogcapi/features/part1/1.0/openapi/ogcapi-features-1.yaml"
_SCHEMAS = Path(__file__).resolve().parent / "schemas" / "ogcapi-processes-1.yaml"
_METHODS = ("get", "put", "post", "delete", "patch")
JSON = "application/json"
PROBLEM = "application/problem+json"
HTML = "text/html"


@cache
def ogc_schemas() -> dict[str, Any]:
    """The OGC API - Processes ``components.schemas`` (the project's copy)."""
    data = yaml.safe_load(_SCHEMAS.read_text(encoding="utf-8"))
    schemas = data["schemas"]
    assert isinstance(schemas, dict)
    _fix_list_defaults(schemas)
    return schemas


def _fix_list_defaults(node: Any) -> None:
    """The bundled file's one error: string defaults given as lists (``default: [value]``)."""
    if isinstance(node, dict):
        if node.get("type") == "string" and isinstance(node.get("default"), list):
            node["default"] = node["default"][0]
        for value in node.values():
            _fix_list_defaults(value)
    elif isinstance(node, list):
        for value in node:
            _fix_list_defaults(value)


def _schema(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def problem_content() -> dict[str, Any]:
    """An OGC exception document, as JSON (problem+json) or as an HTML page."""
    return {
        PROBLEM: {"schema": _schema("exception")},
        HTML: {"schema": {"type": "string"}},
    }


def problem_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": problem_content()}


def _page(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {JSON: {"schema": _schema(schema)}, HTML: {"schema": {"type": "string"}}},
    }


#: The OGC response objects pygeoapi refers to remotely, defined locally.
RESPONSES: dict[str, dict[str, Any]] = {
    "LandingPage": _page("The landing page: links to the API's resources", "landingPage"),
    "ProcessList": _page("The processes offered", "processList"),
    "ExecuteAsync": {
        "description": "The job was created; its status info (Location: the job)",
        "headers": {"Location": {"schema": {"type": "string"}, "description": "The job URL"}},
        "content": {JSON: {"schema": _schema("statusInfo")}},
    },
    "InvalidParameter": problem_response("A query parameter has an invalid value"),
    "NotFound": problem_response("The resource does not exist"),
    "ServerError": problem_response("A server error occurred"),
}

_REMOTE: dict[str, str] = {
    **{
        f"{_OAPIP}/schemas/{name}.yaml": f"#/components/schemas/{name}"
        for name in ("exception", "execute", "statusInfo", "results", "processList", "jobList")
    },
    **{f"{_OAPIP}/responses/{name}.yaml": f"#/components/responses/{name}" for name in RESPONSES},
    **{
        f"{_FEATURES}#/components/responses/{name}": f"#/components/responses/{name}"
        for name in RESPONSES
    },
}


def localise_refs(node: Any) -> None:
    """Replace every remote ``$ref`` under ``node`` by its local equivalent (in place).

    A remote reference not in the table is a bug of ours (the document would
    send clients to fetch it): ValueError names it.
    """
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith(("http://", "https://")):
                if ref not in _REMOTE:
                    raise ValueError(f"no local equivalent of the remote $ref {ref}")
                item["$ref"] = _REMOTE[ref]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def make_self_contained(oas: dict[str, Any]) -> None:
    """Local references only; the OGC schemas and responses in ``components``."""
    components = oas.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name, schema in ogc_schemas().items():
        schemas.setdefault(name, schema)
    responses = components.setdefault("responses", {})
    for name, response in RESPONSES.items():
        responses.setdefault(name, response)
    localise_refs(oas)
    _fix_parameters(components.get("parameters", {}))
    _fix_discovery(oas["paths"])
    for path, item in oas["paths"].items():
        if path.startswith("/wps"):  # OWS exception reports, described in openapi_paths
            continue
        for method, op in item.items():
            if method in _METHODS:
                _describe_answers(path, op)


def _fix_parameters(parameters: dict[str, Any]) -> None:
    """``f``: the formats this server answers (pygeoapi lists jsonld, which it does not)."""
    f = parameters.get("f")
    if f is not None:
        f["schema"] = {"type": "string", "enum": ["json", "html"], "default": "json"}
        f["description"] = "The response format: json (the default) or html."


def _fix_discovery(paths: dict[str, Any]) -> None:
    """``/conformance`` answers the conformance declaration (pygeoapi: the landing page)."""
    conformance = paths.get("/conformance", {}).get("get")
    if conformance is not None:
        conformance["responses"]["200"] = _page("The conformance classes", "confClasses")


def _is_ref(response: dict[str, Any]) -> bool:
    return "$ref" in response


def _takes_format(op: dict[str, Any]) -> bool:
    return any(
        p.get("$ref") == "#/components/parameters/f" or p.get("name") == "f"
        for p in op.get("parameters", [])
    )


def _describe_answers(path: str, op: dict[str, Any]) -> None:
    """The error answers every operation can give, and HTML where ``f=html`` is offered."""
    responses: dict[str, Any] = op.setdefault("responses", {})
    responses.setdefault("400", problem_response("Invalid request (parameter or body)"))
    if "{" in path:
        responses.setdefault("404", {"$ref": "#/components/responses/NotFound"})
    if "requestBody" in op:
        responses.setdefault("413", problem_response("Request body too large"))
        responses.setdefault("415", problem_response("Unsupported request media type"))
    responses.setdefault("500", {"$ref": "#/components/responses/ServerError"})
    responses.setdefault("503", problem_response("The job store or a site cannot be reached"))
    html = _takes_format(op)
    for status, response in responses.items():
        if _is_ref(response):
            continue
        content = response.setdefault("content", {}) if status[0] in "45d" else None
        if content is not None:  # 4xx, 5xx, default: OGC exception documents
            for media, entry in problem_content().items():
                content.setdefault(media, entry)
        elif html and status.startswith("2") and response.get("content"):
            response["content"].setdefault(HTML, {"schema": {"type": "string"}})
