"""Every error of the OGC API surface is an OGC exception document with the right status.

Also the authentication seam: one ``authenticate`` call per request, public
paths served anonymously, 401 documents for the rest.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from flask import Flask

from gateway.app import create_app
from gateway.errors import Unauthorized
from gateway.identity.auth import Principal
from gateway.ogcapi import register_ogcapi

pytestmark = pytest.mark.unit

BASE = "http://gw.example:5000"
_COMMON = "http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/"
_PROC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"server": {"base_url": BASE, "sync_timeout_seconds": 0.2, "max_body_bytes": 2000}}


@pytest.fixture
def client(services):
    app = create_app(services.settings, services)
    app.testing = True
    return app.test_client()


def assert_problem(response: Any, status: int, type_: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.data
    assert response.mimetype == "application/problem+json"
    doc = response.get_json()
    assert set(doc) >= {"type", "title", "status", "detail"}
    assert doc["status"] == status
    assert isinstance(doc["detail"], str) and doc["detail"]
    assert "Traceback" not in response.get_data(as_text=True)
    if type_:
        assert doc["type"] == type_
    return doc


EXECUTE = "/processes/echo/execution"


def test_unknown_process(client):
    assert_problem(client.get("/processes/nope"), 404, _PROC + "no-such-process")
    assert_problem(
        client.post("/processes/nope/execution", json={"inputs": {}}),
        404,
        _PROC + "no-such-process",
    )


@pytest.mark.parametrize(
    "body, words",
    [
        ({"inputs": {"string_input": 5}}, "string_input"),
        ({"inputs": {"nonsense": 1}}, "nonsense"),
        ({"inputs": {"pause": 10_000}}, "pause"),
        ({"inputs": {}, "outputs": {"nope": {}}}, "nope"),
        ({"inputs": {}, "response": "everything"}, "response"),
        ([1, 2], "JSON object"),
    ],
)
def test_invalid_inputs(client, body, words):
    doc = assert_problem(client.post(EXECUTE, json=body), 400, _PROC + "invalid-input")
    assert words in doc["detail"]


def test_missing_required_input(client):
    doc = assert_problem(client.post("/processes/ndvi/execution", json={"inputs": {}}), 400)
    assert "image" in doc["detail"]


def test_malformed_and_empty_json(client):
    bad = client.post(EXECUTE, data=b'{"inputs": ', content_type="application/json")
    assert "not valid JSON" in assert_problem(bad, 400, _COMMON + "bad-request")["detail"]
    assert_problem(client.post(EXECUTE, data=b"", content_type="application/json"), 400)
    assert_problem(client.post(EXECUTE, data=b"\xff\xfe", content_type="application/json"), 400)


def test_wrong_content_type(client):
    r = client.post(EXECUTE, data=b"inputs=1", content_type="application/x-www-form-urlencoded")
    assert_problem(r, 415, _COMMON + "unsupported-media-type")
    # no Content-Type at all is tolerated: the body is read as JSON
    ok = client.post(EXECUTE, data=b'{"inputs": {}}', headers={"Prefer": "respond-async"})
    assert ok.status_code == 201


def test_body_too_large(client):
    big = {"inputs": {"string_input": "x" * 5000}}
    assert_problem(client.post(EXECUTE, json=big), 413, _COMMON + "payload-too-large")


@pytest.mark.parametrize(
    "path",
    [
        "/jobs/not-a-uuid",
        f"/jobs/{uuid.uuid4()}",
        f"/jobs/{uuid.uuid4()}/results",
        "/jobs/invalid-job-x/results",
        f"/jobs/{uuid.uuid4()}/outputs/a.tif",
    ],
)
def test_unknown_job(client, path):
    assert_problem(client.get(path), 404, _PROC + "no-such-job")


def test_unknown_job_dismiss(client):
    assert_problem(client.delete(f"/jobs/{uuid.uuid4()}"), 404, _PROC + "no-such-job")


def test_results_not_ready(client):
    job_id = client.post(
        EXECUTE, json={"inputs": {}}, headers={"Prefer": "respond-async"}
    ).get_json()["jobID"]
    assert_problem(client.get(f"/jobs/{job_id}/results"), 404, _PROC + "result-not-ready")


def test_unknown_route_and_wrong_method(client):
    assert_problem(client.get("/collections"), 404, _COMMON + "not-found")
    r = client.put("/jobs")
    assert_problem(r, 405, _COMMON + "method-not-allowed")
    assert "GET" in r.headers["Allow"]
    assert_problem(client.get(EXECUTE), 405)
    # (PUT and DELETE /processes/{id} are Part 2's replace and undeploy)
    assert_problem(client.patch("/processes/echo"), 405)


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "status=finished",
        "next=garbage!!",
        "datetime=yesterday",
        "datetime=2024-01-01T00:00:00",  # no offset
        "datetime=2024-13-01T00:00:00Z",
        "datetime=2024-02-01T00:00:00Z/2024-01-01T00:00:00Z",
        "datetime=a/b/c",
        "datetime=..",
        "datetime=../..",
        "minDuration=-1",
        "minDuration=1.5",
        "maxDuration=ten",
        "maxDuration=99999999999999999999",
        "minDuration=10&maxDuration=5",
        "f=xml",
    ],
)
def test_bad_job_list_parameters(client, query):
    assert_problem(client.get(f"/jobs?{query}"), 400, _COMMON + "bad-request")


def test_bad_process_list_parameters(client):
    assert_problem(client.get("/processes?limit=0"), 400)
    assert_problem(client.get("/processes?limit=x"), 400)
    assert_problem(client.get("/conformance?f=pdf"), 400)


def test_unexpected_error_is_a_500_without_details(client, services, monkeypatch, caplog):
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(services.jobs, "list_summaries", explode)
    r = client.get("/jobs")
    doc = assert_problem(r, 500, _COMMON + "server-error")
    assert "hunter2" not in r.get_data(as_text=True)
    assert "reference" in doc["detail"]
    assert any("hunter2" in (rec.exc_text or "") for rec in caplog.records)


def test_html_errors_for_browsers(client):
    r = client.get("/processes/nope?f=html")
    assert r.status_code == 404 and r.mimetype == "text/html"
    assert b"does not exist" in r.data


# -- authentication seam --------------------------------------------------------------


class TokenAuth:
    """Accepts ``Authorization: Bearer good``; counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        self.calls += 1
        if headers.get("authorization") != "Bearer good":
            raise Unauthorized(
                "a valid bearer token is required",
                headers={"WWW-Authenticate": 'Bearer realm="hpcgw"'},
            )
        return Principal(sub="sub-carol", username="carol", hpc_login="carol")


@pytest.fixture
def guarded(services):
    auth = TokenAuth()
    app = Flask("guarded")
    app.config["MAX_CONTENT_LENGTH"] = 2000
    register_ogcapi(app, services, auth, public_paths=("/", "/conformance", "/openapi"))
    return app.test_client(), auth


def test_public_paths_need_no_token(guarded):
    client, auth = guarded
    for path in ("/", "/conformance", "/openapi"):
        assert client.get(path).status_code == 200, path
    assert auth.calls == 0


def test_protected_paths_answer_401(guarded):
    client, _ = guarded
    r = client.get("/jobs")
    assert_problem(r, 401, _COMMON + "unauthorized")
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="hpcgw"'
    assert_problem(client.get("/processes"), 401)
    assert_problem(client.post(EXECUTE, json={"inputs": {}}), 401)


def test_principal_resolved_once_per_request(guarded, services):
    client, auth = guarded
    headers = {"Authorization": "Bearer good", "Prefer": "respond-async"}
    r = client.post(EXECUTE, json={"inputs": {}}, headers=headers)
    assert r.status_code == 201 and auth.calls == 1
    job = services.store.get(r.get_json()["jobID"])
    assert job.owner.username == "carol"
    listing = client.get("/jobs", headers=headers)
    assert [j["jobID"] for j in listing.get_json()["jobs"]] == [job.id]
    assert auth.calls == 2
