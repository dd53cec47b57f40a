"""The OpenAPI document describes every route the app serves, validly, with its security.

Every rule of ``app.url_map`` (but Flask's static files and the pages for
people in a browser, ``gateway.web``, whose endpoints start with ``web_``) must be a path of
``/openapi`` with the same methods, so a route added without a description
fails here. The document is checked with pygeoapi's JSON-schema validation and
with openapi-spec-validator (path parameters declared, operationIds unique,
local references resolvable); the OGC schemas it references remotely are
replaced by stubs first, so the check runs offline.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from openapi_spec_validator import validate as validate_spec
from pygeoapi.openapi import validate_openapi_document

from gateway.app import build_services, create_app
from gateway.ogcapi.openapi_paths import operations
from gateway.services import Services
from gateway.settings import Settings

pytestmark = pytest.mark.unit

BASE = "http://gw.example:5000"
#: Routes deliberately absent from the document: pygeoapi's CSS and images.
NOT_DESCRIBED = {"/static/<path:filename>"}
_IGNORED_METHODS = {"HEAD", "OPTIONS"}


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    data: dict[str, Any] = {
        "database": {"url": f"sqlite:///{tmp_path}/x.db"},
        "server": {"base_url": BASE},
        "publication": {"root": str(tmp_path / "pub")},
        **overrides,
    }
    return Settings(**data)


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Any]:
    built: list[Services] = []

    def make(**overrides: Any) -> Flask:
        services = build_services(_settings(tmp_path, **overrides))
        built.append(services)
        app = create_app(services.settings, services)
        app.testing = True
        return app

    yield make
    for services in built:
        services.close()


def openapi(app: Flask) -> dict[str, Any]:
    r = app.test_client().get("/openapi")
    assert r.status_code == 200
    document = r.get_json()
    assert isinstance(document, dict)
    return document


def _shape(path: str) -> str:
    """A path with every parameter (Flask ``<conv:name>`` or OpenAPI ``{name}``) as ``{}``."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


def _concrete(rule: str, app: Flask) -> list[str]:
    """The per-process paths pygeoapi generates for a ``/processes/<process_id>...`` rule."""
    if not rule.startswith("/processes/<process_id>"):
        return []
    registry = app.extensions["hpcgw"].registry
    return [rule.replace("<process_id>", process.id) for process in registry]


def undocumented(app: Flask, document: dict[str, Any]) -> list[str]:
    """``METHOD rule`` of every route of ``app`` that ``document`` does not describe."""
    by_shape: dict[str, set[str]] = {}
    for path, item in document["paths"].items():
        by_shape.setdefault(_shape(path), set()).update(m.upper() for m in item)
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.rule in NOT_DESCRIBED or rule.endpoint.startswith("web_"):
            continue
        for method in sorted((rule.methods or set()) - _IGNORED_METHODS):
            templated = method in by_shape.get(_shape(rule.rule), set())
            concrete = _concrete(rule.rule, app)
            per_process = bool(concrete) and all(
                method in {m.upper() for m in document["paths"].get(p, {})} for p in concrete
            )
            if not (templated or per_process):
                missing.append(f"{method} {rule.rule}")
    return missing


def offline(node: Any) -> Any:
    """``node`` with remote ``$ref``s replaced by stubs of the right kind (no network)."""
    if isinstance(node, list):
        return [offline(v) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("http"):
        return {"description": f"see {ref}"} if "/responses/" in ref else {"type": "object"}
    return {key: offline(value) for key, value in node.items()}


@pytest.mark.parametrize("mode", ["none", "oidc"])
def test_every_route_of_the_app_is_in_the_openapi_document(make_app, mode):
    app = make_app(auth={"mode": mode})
    assert undocumented(app, openapi(app)) == []


def test_the_drift_check_notices_a_new_route(make_app):
    app = make_app()  # the document is built here, before the routes below exist
    app.add_url_rule("/jobs/<job_id>/logs", "logs", lambda job_id: "", methods=["GET"])
    app.add_url_rule("/wps", "wps_put", lambda: "", methods=["PUT"])
    assert undocumented(app, openapi(app)) == ["GET /jobs/<job_id>/logs", "PUT /wps"]


@pytest.mark.parametrize("mode", ["none", "oidc"])
def test_the_document_is_valid_openapi(make_app, mode):
    document = openapi(make_app(auth={"mode": mode}))
    assert validate_openapi_document(document)
    validate_spec(offline(document))
    ids = [op["operationId"] for _, op in operations(document)]
    assert len(ids) == len(set(ids))
    for path, operation in operations(document):
        assert "responses" in operation and operation.get("summary"), path


def test_gateway_routes_are_described(make_app):
    paths = openapi(make_app())["paths"]
    quote = paths["/processes/{processId}/quotations"]["post"]
    assert [p["name"] for p in quote["parameters"]] == ["processId"]
    assert quote["requestBody"]["required"] is True
    assert {"200", "400", "404"} <= set(quote["responses"])
    usage = {p["name"] for p in paths["/accounting/usage"]["get"]["parameters"]}
    assert {"from", "to", "groupBy", "user", "project", "process", "site", "f"} <= usage
    assert "text/csv" in paths["/accounting/usage"]["get"]["responses"]["200"]["content"]
    assert "204" in paths["/accounting/budgets/{scope}/{name}/{period}"]["delete"]["responses"]
    assert {p["name"] for p in paths["/admin/users/sync"]["post"]["parameters"]} == {
        "dryRun",
        "force",
    }
    assert "403" in paths["/admin/users/sync"]["post"]["responses"]
    assert set(paths["/wps"]) == {"get", "post"}
    assert "application/xml" in paths["/wps"]["post"]["requestBody"]["content"]
    assert (
        "application/geo+json"
        in (paths["/stac/items/{jobId}.json"]["get"]["responses"]["200"]["content"])
    )
    assert paths["/metrics"]["get"]["responses"]["200"]["content"]


def test_execution_documents_prefer_wait_and_dismiss_removal(make_app):
    paths = openapi(make_app())["paths"]
    [prefer] = [
        p for p in paths["/processes/echo/execution"]["post"]["parameters"] if p["name"] == "Prefer"
    ]
    assert "enum" not in prefer["schema"]  # not only respond-async
    assert "wait=N" in prefer["description"]
    assert "removed" in paths["/jobs/{jobId}"]["delete"]["description"]


def test_no_security_when_authentication_is_off(make_app):
    document = openapi(make_app(auth={"mode": "none"}))
    assert "security" not in document
    assert "securitySchemes" not in document["components"]
    assert all("security" not in op for _, op in operations(document))


def test_oidc_security_follows_the_public_paths(make_app):
    issuer = "https://id.example.org/realms/gep"
    auth = {"mode": "oidc", "oidc": {"issuer": issuer}, "public_paths": ["/", "/openapi"]}
    app = make_app(auth=auth)
    document = openapi(app)
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": f"An access token issued by {issuer}",
    }
    assert schemes["oidc"]["openIdConnectUrl"] == f"{issuer}/.well-known/openid-configuration"
    assert document["security"] == [{"bearerAuth": []}, {"oidc": []}]
    paths = document["paths"]
    public = (
        paths["/"]["get"],
        paths["/openapi"]["get"],
        paths["/processes"]["get"],  # discovery: public by default
        paths["/processes/echo"]["get"],
    )
    for operation in public:
        assert operation["security"] == [] and "401" not in operation["responses"]
    # one endpoint for discovery (public) and jobs (token): the token is optional
    for method in ("get", "post"):
        wps = paths["/wps"][method]
        assert wps["security"] == [{}, {"bearerAuth": []}, {"oidc": []}]
        assert "401" in wps["responses"] and "Execute" in wps["description"]
    for guarded in (
        paths["/jobs/{jobId}"]["delete"],
        paths["/processes/echo/execution"]["post"],
        paths["/processes/{processId}/quotations"]["post"],
        paths["/conformance"]["get"],  # not public in this configuration
        paths["/wps/status/{jobId}"]["get"],
    ):
        assert "security" not in guarded and "401" in guarded["responses"]
    # what the app really answers without a token is what the document says
    client = app.test_client()
    for path, template in (("/wps/status/x", "/wps/status/{jobId}"), ("/conformance", None)):
        r = client.get(path)
        assert r.status_code == 401
        described = paths[template or path]["get"]["responses"]["401"]["content"]
        assert r.mimetype in described, path  # and text/html, for f=html
    assert client.get("/openapi").status_code == 200


def test_private_discovery_is_described_as_guarded(make_app):
    auth = {"mode": "oidc", "oidc": {"issuer": "https://id.example.org/realms/gep"}}
    app = make_app(auth={**auth, "public_discovery": False})
    paths = openapi(app)["paths"]
    for guarded in (paths["/processes"]["get"], paths["/wps"]["get"], paths["/wps"]["post"]):
        assert "security" not in guarded and "401" in guarded["responses"]
    client = app.test_client()
    assert client.get("/processes").status_code == 401
    wps = client.get("/wps?service=WPS&request=GetCapabilities")
    assert wps.status_code == 401 and wps.mimetype == "text/xml"


def test_metrics_scrape_token_is_its_own_scheme(make_app, tmp_path):
    token = tmp_path / "scrape.token"
    token.write_text("s3cret\n", encoding="utf-8")
    metrics = {"public": True, "bearer_token_file": str(token)}
    document = openapi(make_app(accounting={"enabled": True, "metrics": metrics}))
    assert document["components"]["securitySchemes"]["metricsToken"]["scheme"] == "bearer"
    assert document["paths"]["/metrics"]["get"]["security"] == [{"metricsToken": []}]
