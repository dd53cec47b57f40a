"""OGC API - Processes discovery resources, the pygeoapi plugins and the generated config.

Responses are validated against the components of the OGC OpenAPI document
shipped in tests/ogc-schemas (an older draft of 1.0: only the components
whose shape matches the approved standard are used -- landingPage, confClasses,
processList, processSummary, process, exception).
"""

from __future__ import annotations

from typing import Any

import pytest
from pygeoapi.openapi import validate_openapi_document
from pygeoapi.process.base import ProcessorExecuteError

from gateway.app import create_app
from gateway.ogcapi.config import pygeoapi_config
from gateway.ogcapi.documents import CONFORMANCE_CLASSES
from gateway.ogcapi.manager import GatewayManager
from gateway.ogcapi.plugin_context import (
    TOKEN_KEY,
    UnknownServicesToken,
    register_services,
    services_for,
)
from gateway.ogcapi.processor import HpcProcessor
from tests.ogc_schemas import openapi_components, validate

pytestmark = pytest.mark.unit

BASE = "http://gw.example:5000"
_CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"server": {"base_url": BASE}}


@pytest.fixture
def app(services):
    application = create_app(services.settings, services)
    application.testing = True
    return application


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def ogc_components() -> dict[str, Any]:
    return openapi_components()


def rels(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {link["rel"]: link for link in doc["links"]}


# -- landing page, conformance, OpenAPI --------------------------------------


def test_landing_page_links(client, ogc_components):
    r = client.get("/")
    assert r.status_code == 200 and r.mimetype == "application/json"
    doc = r.get_json()
    validate(doc, "landingPage", ogc_components)
    by_rel = rels(doc)
    assert by_rel["service-desc"]["href"] == f"{BASE}/openapi"
    assert by_rel["conformance"]["href"] == f"{BASE}/conformance"
    assert by_rel["http://www.opengis.net/def/rel/ogc/1.0/processes"]["href"] == f"{BASE}/processes"
    assert by_rel["http://www.opengis.net/def/rel/ogc/1.0/job-list"]["href"] == f"{BASE}/jobs"
    # nothing we do not serve
    assert "data" not in by_rel
    assert all("TileMatrixSets" not in link["href"] for link in doc["links"])
    assert all(link.get("type") != "application/ld+json" for link in doc["links"])


def test_conformance_lists_exactly_what_we_implement(client, ogc_components):
    r = client.get("/conformance")
    assert r.status_code == 200
    doc = r.get_json()
    validate(doc, "confClasses", ogc_components)
    expected = {
        _CONF + c
        for c in (
            "core",
            "ogc-process-description",
            "json",
            "html",
            "oas30",
            "job-list",
            "callback",
            "dismiss",
        )
    } | {
        "http://www.opengis.net/spec/ogcapi-processes-2/1.0/conf/" + c
        for c in ("deploy-replace-undeploy", "ogcapppkg", "cwl")
    }
    assert set(doc["conformsTo"]) == expected == set(CONFORMANCE_CLASSES)
    assert client.get("/conformance").get_json() == doc  # stable across calls


def test_openapi_document(client):
    r = client.get("/openapi")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/vnd.oai.openapi+json;version=3.0"
    oas = r.get_json()
    assert validate_openapi_document(oas)
    paths = oas["paths"]
    assert "/collections" not in paths
    for path in (
        "/",
        "/conformance",
        "/processes",
        "/processes/echo/execution",
        "/jobs",
        "/jobs/{jobId}",
        "/jobs/{jobId}/results",
        "/jobs/{jobId}/outputs/{fileName}",
    ):
        assert path in paths, path
    params = {p.get("name") for p in paths["/jobs"]["get"]["parameters"]}
    assert {"limit", "processID", "status", "next"} <= params
    assert "200" in paths["/jobs/{jobId}"]["delete"]["responses"]
    assert oas["servers"][0]["url"] == BASE


@pytest.mark.parametrize("path", ["/", "/conformance", "/processes", "/processes/echo", "/jobs"])
def test_html_pages(client, path):
    for r in (client.get(f"{path}?f=html"), client.get(path, headers={"Accept": "text/html"})):
        assert r.status_code == 200, path
        assert r.mimetype == "text/html"
        assert b"<html" in r.data


def test_openapi_html_and_static_files(client):
    r = client.get("/openapi?f=html")
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert b"swagger" in r.data.lower()
    css = client.get("/static/css/default.css")
    assert css.status_code == 200 and css.mimetype == "text/css"


def test_f_json_wins_over_accept(client):
    r = client.get("/processes?f=json", headers={"Accept": "text/html"})
    assert r.mimetype == "application/json"


# -- processes --------------------------------------------------------------


def test_process_list(client, ogc_components):
    r = client.get("/processes")
    assert r.status_code == 200
    doc = r.get_json()
    validate(doc, "processList", ogc_components)
    ids = {p["id"] for p in doc["processes"]}
    assert {"echo", "ndvi"} <= ids
    for summary in doc["processes"]:
        validate(summary, "processSummary", ogc_components)
        assert "inputs" not in summary and "outputs" not in summary
        assert summary["links"][0]["href"] == f"{BASE}/processes/{summary['id']}"
    echo = next(p for p in doc["processes"] if p["id"] == "echo")
    assert echo["jobControlOptions"] == ["sync-execute", "async-execute", "dismiss"]
    assert echo["outputTransmission"] == ["value", "reference"]
    assert all(link.get("type") != "application/ld+json" for link in doc["links"])
    assert rels(doc)["self"]["href"] == f"{BASE}/processes"


def test_process_list_limit(client):
    r = client.get("/processes?limit=1")
    assert r.status_code == 200 and len(r.get_json()["processes"]) == 1


def test_process_description(client, ogc_components):
    r = client.get("/processes/echo")
    assert r.status_code == 200
    doc = r.get_json()
    validate(doc, "process", ogc_components)
    assert doc["id"] == "echo" and doc["version"] == "1.0.0"
    assert set(doc["inputs"]) >= {"string_input", "bounding_box_input", "pause"}
    assert doc["jobControlOptions"] == ["sync-execute", "async-execute", "dismiss"]
    assert doc["outputTransmission"] == ["value", "reference"]
    assert "example" not in doc and "hpc" not in doc
    by_rel = rels(doc)
    assert by_rel["http://www.opengis.net/def/rel/ogc/1.0/execute"]["href"] == (
        f"{BASE}/processes/echo/execution"
    )
    assert by_rel["self"]["href"] == f"{BASE}/processes/echo"


def test_unknown_process_is_ogc_404(client, ogc_components):
    for r in (client.get("/processes/nope"), client.get("/processes/nope?f=json")):
        assert r.status_code == 404
        assert r.mimetype == "application/problem+json"
        doc = r.get_json()
        validate(doc, "exception", ogc_components)
        assert doc["type"].endswith("/no-such-process")


# -- plugins and config -------------------------------------------------------


def test_config_lists_processes_with_our_plugins(app):
    services = app.extensions["hpcgw"]
    config = pygeoapi_config(services.settings, services.registry, "tok")
    assert config["server"]["manager"]["name"] == "gateway.ogcapi.manager.GatewayManager"
    echo = config["resources"]["echo"]
    assert echo["type"] == "process"
    assert echo["processor"] == {
        "name": "gateway.ogcapi.processor.HpcProcessor",
        "process_id": "echo",
        TOKEN_KEY: "tok",
    }


def test_plugins_reach_the_services_through_the_token(app):
    services = app.extensions["hpcgw"]
    token = register_services(services)
    assert services_for({TOKEN_KEY: token}) is services
    with pytest.raises(UnknownServicesToken):
        services_for({TOKEN_KEY: "not-registered"})
    manager = GatewayManager({"name": "x", TOKEN_KEY: token})
    assert manager.is_async and manager.supports_subscribing
    assert dict(manager.processes) == {}  # no resources in this bare definition
    processor = HpcProcessor(
        {"name": "gateway.ogcapi.processor.HpcProcessor", "process_id": "echo", TOKEN_KEY: token}
    )
    assert processor.metadata["id"] == "echo"
    assert processor.metadata["example"] == {"inputs": {"string_input": "hi"}}
    with pytest.raises(ProcessorExecuteError, match="never executed inside the web process"):
        processor.execute({"string_input": "hi"})


def test_manager_outside_a_request_sees_no_jobs(app):
    manager = app.extensions["hpcgw.ogcapi"].api.manager
    assert isinstance(manager, GatewayManager)
    assert manager.get_jobs() == {"jobs": [], "numberMatched": 0}
    with pytest.raises(NotImplementedError):
        manager.add_job({})
    with pytest.raises(NotImplementedError):
        manager.update_job("x", {})
