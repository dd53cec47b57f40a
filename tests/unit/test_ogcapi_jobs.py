"""OGC API - Processes job resources over Flask's test client (no Slurm, no worker).

Jobs reach final states through the job store's own transitions; the
synchronous-execution tests run a tiny stand-in worker thread that finishes
accepted jobs the way the real finaliser does (results mapping or error doc).
"""

from __future__ import annotations

import email
import email.policy
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.jobs.records import Job, JobQuery, JobUpdate, NewJob, Owner
from gateway.jobs.states import JobState
from gateway.ogcapi.manager import GatewayManager
from gateway.services import Services
from tests.ogc_schemas import openapi_components, validate
from tests.unit.test_egress import resolver as offline_resolver

pytestmark = pytest.mark.unit

BASE = "http://gw.example:5000"
ME = Owner("dev-user", "alice", "alice")  # NoAuth's default user
BOB = Owner("sub-bob", "bob", "bob")
REL_RESULTS = "http://www.opengis.net/def/rel/ogc/1.0/results"
FAILED_TYPE = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/job-failed"


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, object]:
    return {
        # generous: the stand-in worker finishes in milliseconds, but a loaded CI
        # machine must not turn a synchronous answer into the async fallback
        "server": {"base_url": BASE, "sync_timeout_seconds": 20},
        # references are checked against an offline resolver, never probed: no DNS here
        "workflow": {"egress": {"probe_references": False}, "cache": {"root": str(tmp_path / "c")}},
    }


@pytest.fixture(autouse=True)
def offline_references(services: Services) -> None:
    services.egress.resolver = offline_resolver


@pytest.fixture
def app(services):
    application = create_app(services.settings, services)
    application.testing = True
    return application


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def components() -> dict[str, Any]:
    return openapi_components()


def new_job(services: Services, owner: Owner = ME, process: str = "echo", **kw: Any) -> Job:
    return services.store.create(
        NewJob(
            id=str(uuid.uuid4()),
            process_id=process,
            process_version="1.0.0",
            owner=owner,
            site="dev",
            inputs={"string_input": "hi"},
            **kw,
        )
    )


def succeed(services: Services, job: Job, results: dict[str, Any]) -> None:
    assert services.store.transition(
        job.id, JobState.SUCCESSFUL, JobUpdate(results=results, progress=100)
    )


def fail(services: Services, job: Job, detail: str = "Slurm job 7 failed: boom", status: int = 500):
    error = {"type": FAILED_TYPE, "title": "Job failed", "status": status, "detail": detail}
    assert services.store.transition(
        job.id, JobState.FAILED, JobUpdate(message=detail, error=error)
    )


def publish(services: Services, job: Job, name: str, data: bytes) -> str:
    folder = services.publication_root / job.id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return f"{BASE}/jobs/{job.id}/outputs/{name}"


class StandInWorker:
    """Finishes every accepted job with ``outcome(job)`` (what the worker would do)."""

    def __init__(self, services: Services, outcome: Callable[[Job], None]) -> None:
        self.services, self.outcome = services, outcome
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.02):
            for job in self.services.store.page(
                JobQuery(states=frozenset({JobState.ACCEPTED}), limit=100)
            ).jobs:
                self.outcome(job)

    def __enter__(self) -> StandInWorker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def echo_outcome(services: Services) -> Callable[[Job], None]:
    names = {
        "string_input": "string_output",
        "xml_input": "xml_output",
        "number_input": "number_output",
    }
    return lambda job: succeed(
        services, job, {names[k]: v for k, v in job.inputs.items() if k in names}
    )


# -- execution ----------------------------------------------------------------


@pytest.mark.parametrize("prefer", ["respond-async", "respond-async ", "wait=5, respond-async"])
def test_async_execution_answers_201_with_location_and_status(client, services, components, prefer):
    r = client.post(
        "/processes/echo/execution",
        json={"inputs": {"string_input": "hi"}},
        headers={"Prefer": prefer},
    )
    assert r.status_code == 201
    assert r.headers["Preference-Applied"] == "respond-async"
    doc = r.get_json()
    validate(doc, "statusInfo", components)
    assert r.headers["Location"] == f"{BASE}/jobs/{doc['jobID']}"
    assert doc["status"] == "accepted" and doc["processID"] == "echo" and doc["type"] == "process"
    assert any(link["rel"] == "monitor" for link in doc["links"])
    # the row exists as soon as the response is out
    row = services.store.get(doc["jobID"])
    assert row.state is JobState.ACCEPTED and row.owner == ME
    assert row.inputs == {"string_input": "hi"}


def test_sync_execution_that_times_out_answers_like_async(client, services):
    services.settings.server.sync_timeout_seconds = 0.3  # no worker: it will time out
    r = client.post("/processes/echo/execution", json={"inputs": {"string_input": "hi"}})
    assert r.status_code == 201
    assert "Preference-Applied" not in r.headers
    doc = r.get_json()
    assert r.headers["Location"].endswith(doc["jobID"])
    assert "synchronous" in doc["message"]
    assert services.store.get(doc["jobID"]).state is JobState.ACCEPTED


def test_sync_execution_document(client, services):
    body = {"inputs": {"string_input": "hi"}, "response": "document"}
    with StandInWorker(services, echo_outcome(services)):
        r = client.post("/processes/echo/execution", json=body)
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.get_json() == {"string_output": "hi"}
    job_id = r.headers["Link"].split(">")[0].rsplit("/", 1)[-1]
    assert r.headers["Link"] == f"<{BASE}/jobs/{job_id}>; rel=monitor"
    assert services.store.get(job_id).state is JobState.SUCCESSFUL


def test_sync_execution_raw_single_value(client, services):
    with StandInWorker(services, echo_outcome(services)):
        r = client.post("/processes/echo/execution", json={"inputs": {"string_input": "hi"}})
        xml = client.post(
            "/processes/echo/execution",
            json={"inputs": {"xml_input": "<a>1</a>"}, "response": "raw"},
        )
    # a literal string is its own text (no JSON quotes); one with a contentMediaType is
    # that document, sent as is
    assert r.status_code == 200 and r.mimetype == "text/plain"
    assert r.data == b"hi"
    assert xml.status_code == 200 and xml.mimetype == "application/xml"
    assert xml.data == b"<a>1</a>"


ECHO_HI = {"inputs": {"string_input": "hi"}, "response": "document"}


@pytest.mark.parametrize("prefer", ["wait=1", "WAIT = 1", 'wait="1"', "wait=1, wait=20"])
def test_prefer_wait_shortens_the_synchronous_wait(client, services, prefer):
    # sync_timeout_seconds is 20 and no worker runs: only the client's wait=1
    # makes the server give up waiting (the first of two waits counts)
    r = client.post("/processes/echo/execution", json=ECHO_HI, headers={"Prefer": prefer})
    assert r.status_code == 201
    assert r.headers["Preference-Applied"] == "wait=1"
    doc = r.get_json()
    assert r.headers["Location"] == f"{BASE}/jobs/{doc['jobID']}"
    assert "within the 1 s of synchronous execution" in doc["message"]
    assert services.store.get(doc["jobID"]).state is JobState.ACCEPTED


def test_prefer_wait_zero_answers_at_once(client, services):
    r = client.post("/processes/echo/execution", json=ECHO_HI, headers={"Prefer": "wait=0"})
    assert r.status_code == 201 and r.headers["Preference-Applied"] == "wait=0"


def test_prefer_wait_with_a_finished_job_answers_synchronously(client, services):
    with StandInWorker(services, echo_outcome(services)):
        r = client.post("/processes/echo/execution", json=ECHO_HI, headers={"Prefer": "wait=20"})
    assert r.status_code == 200 and r.get_json() == {"string_output": "hi"}
    assert r.headers["Preference-Applied"] == "wait=20"
    assert r.headers["Link"].endswith("; rel=monitor")


def test_prefer_wait_beyond_the_server_limit_is_cut_and_not_reported(client, services):
    services.settings.server.sync_timeout_seconds = 0.3  # no worker: it will time out
    r = client.post("/processes/echo/execution", json=ECHO_HI, headers={"Prefer": "wait=3600"})
    assert r.status_code == 201
    assert "Preference-Applied" not in r.headers
    assert "within the 0.3 s of synchronous execution" in r.get_json()["message"]


@pytest.mark.parametrize("prefer", ["wait=abc", "wait=-1", "wait=1.5", "wait", "wait=1e3"])
def test_an_invalid_wait_preference_is_ignored(client, services, prefer):
    with StandInWorker(services, echo_outcome(services)):
        r = client.post("/processes/echo/execution", json=ECHO_HI, headers={"Prefer": prefer})
    assert r.status_code == 200 and r.get_json() == {"string_output": "hi"}
    assert "Preference-Applied" not in r.headers


def test_respond_async_wins_over_wait(client, services):
    with StandInWorker(services, echo_outcome(services)):
        r = client.post(
            "/processes/echo/execution",
            json=ECHO_HI,
            headers={"Prefer": "respond-async, wait=20"},
        )
    assert r.status_code == 201
    assert r.headers["Preference-Applied"] == "respond-async"
    assert r.get_json()["status"] == "accepted"


def test_sync_execution_of_a_failing_job_answers_its_exception(client, services):
    with StandInWorker(services, lambda job: fail(services, job, "exit code 3", status=500)):
        r = client.post("/processes/echo/execution", json={"inputs": {"string_input": "x"}})
    assert r.status_code == 500
    assert r.mimetype == "application/problem+json"
    doc = r.get_json()
    assert doc["type"] == FAILED_TYPE and doc["detail"] == "exit code 3"
    assert "rel=monitor" in r.headers["Link"]


# -- status info and job list ------------------------------------------------------


def test_job_status(client, services, components):
    job = new_job(services)
    r = client.get(f"/jobs/{job.id}")
    assert r.status_code == 200
    doc = r.get_json()
    validate(doc, "statusInfo", components)
    assert doc["jobID"] == job.id and doc["status"] == "accepted" and doc["progress"] == 0
    assert doc["created"].endswith("Z")
    assert not any(link["rel"] == REL_RESULTS for link in doc["links"])
    services.store.update(job.id, JobUpdate(scheduler_job_id="4242"))
    succeed(services, job, {"string_output": "hi"})
    doc = client.get(f"/jobs/{job.id}").get_json()
    validate(doc, "statusInfo", components)
    assert doc["slurmJobId"] == "4242"
    assert doc["status"] == "successful" and doc["progress"] == 100 and doc["finished"]
    results = [link for link in doc["links"] if link["rel"] == REL_RESULTS]
    assert results[0]["href"] == f"{BASE}/jobs/{job.id}/results"
    html = client.get(f"/jobs/{job.id}?f=html")
    assert html.status_code == 200 and job.id.encode() in html.data


def test_job_status_names_the_portal_that_submitted_it(client, services, components):
    direct = client.get(f"/jobs/{new_job(services).id}").get_json()
    assert "submittedVia" not in direct
    via = new_job(services, submitted_via="gep-portal")
    assert via.extra == {"submitted_via": {"client": "gep-portal"}}
    doc = client.get(f"/jobs/{via.id}").get_json()
    validate(doc, "statusInfo", components)
    assert doc["submittedVia"] == "gep-portal"


def test_internal_states_map_to_ogc_status(client, services):
    job = new_job(services)
    services.store.transition(job.id, JobState.QUEUED)
    assert client.get(f"/jobs/{job.id}").get_json()["status"] == "accepted"
    services.store.transition(job.id, JobState.PUBLISHING)
    assert client.get(f"/jobs/{job.id}").get_json()["status"] == "running"


def test_job_list_pages_with_next_links(client, services, components):
    created = {new_job(services).id for _ in range(25)}
    new_job(services, owner=BOB)  # never listed for me
    seen: list[str] = []
    url = "/jobs?limit=10"
    pages = 0
    while url:
        r = client.get(url)
        assert r.status_code == 200
        doc = r.get_json()
        validate(doc, "jobList", components)
        for info in doc["jobs"]:
            validate(info, "statusInfo", components)
        seen += [j["jobID"] for j in doc["jobs"]]
        links = {link["rel"]: link["href"] for link in doc["links"]}
        assert {"self", "alternate"} <= set(links)
        pages += 1
        url = links.get("next", "").removeprefix(BASE)
        if url:
            assert "limit=10" in url and "next=" in url
    assert pages == 3
    assert len(seen) == 25 and set(seen) == created


def test_job_list_default_limit_and_html(client, services):
    for _ in range(12):
        new_job(services)
    assert len(client.get("/jobs").get_json()["jobs"]) == 10
    html = client.get("/jobs?f=html")
    assert html.status_code == 200 and b"Next" in html.data


def test_job_list_filters(client, services):
    ok = new_job(services)
    succeed(services, ok, {})
    bad = new_job(services)
    fail(services, bad)
    waiting = new_job(services)
    ndvi = new_job(services, process="ndvi")

    def ids(query: str) -> set[str]:
        r = client.get(f"/jobs?{query}")
        assert r.status_code == 200, r.get_json()
        return {j["jobID"] for j in r.get_json()["jobs"]}

    assert ids("status=successful") == {ok.id}
    assert ids("status=successful,failed") == {ok.id, bad.id}
    assert ids("status=successful&status=failed") == {ok.id, bad.id}
    assert ids("status=accepted") == {waiting.id, ndvi.id}
    assert ids("processID=ndvi") == {ndvi.id}
    assert ids("processID=ndvi,echo&status=accepted") == {waiting.id, ndvi.id}
    assert ids("type=process") == {ok.id, bad.id, waiting.id, ndvi.id}
    assert ids("type=wps") == set()
    page = client.get("/jobs?processID=ndvi&limit=1").get_json()
    assert page["links"][0]["href"] == f"{BASE}/jobs?processID=ndvi&limit=1&f=json"


# -- results -------------------------------------------------------------------


def test_results_not_ready(client, services):
    job = new_job(services)
    r = client.get(f"/jobs/{job.id}/results")
    assert r.status_code == 404 and r.mimetype == "application/problem+json"
    assert r.get_json()["type"].endswith("/result-not-ready")


def test_results_of_a_failed_job_are_its_exception(client, services, components):
    job = new_job(services)
    fail(services, job, "Slurm job 7 failed: it ran out of memory.")
    r = client.get(f"/jobs/{job.id}/results")
    assert r.status_code == 500 and r.mimetype == "application/problem+json"
    doc = r.get_json()
    validate(doc, "exception", components)
    assert doc == {
        "type": FAILED_TYPE,
        "title": "Job failed",
        "status": 500,
        "detail": "Slurm job 7 failed: it ran out of memory.",
    }


def test_results_document(client, services):
    job = new_job(services, response="document")
    results = {
        "string_output": "hi",
        "number_output": 1.5,
        "bounding_box_output": {"bbox": [1, 2, 3, 4]},
    }
    succeed(services, job, results)
    r = client.get(f"/jobs/{job.id}/results")
    assert r.status_code == 200 and r.mimetype == "application/json"
    # (not validated against the draft's results.yaml: its oneOf string|byte is ambiguous)
    assert r.get_json() == results
    html = client.get(f"/jobs/{job.id}/results?f=html")
    assert html.status_code == 200 and b"string_output" in html.data


NDVI_IMAGE = {"image": {"href": "https://data.example.org/scene.tif"}}
ASYNC = {"Prefer": "respond-async"}


def ndvi_outcome(services: Services) -> Callable[[Job], None]:
    """What the finaliser would publish for an ndvi job (only the requested outputs)."""

    def outcome(job: Job) -> None:
        wanted = job.outputs_request or {}
        modes = {k: (v or {}).get("transmissionMode", "value") for k, v in wanted.items()}
        results: dict[str, Any] = {}
        if "quicklook" in wanted:
            href = publish(services, job, "quicklook.png", b"\x89PNG-bytes")
            results["quicklook"] = {"href": href, "type": "image/png"}
        if "ndvi" in wanted:
            href = publish(services, job, "ndvi.tif", b"II*")
            results["ndvi"] = {"href": href, "type": "image/tiff; application=geotiff"}
        if "statistics" in wanted:
            stats = {"valid_pixels": 4}
            if modes["statistics"] == "reference":
                href = publish(services, job, "statistics.json", b'{"valid_pixels": 4}')
                stats = {"href": href, "type": "application/json"}
            results["statistics"] = stats
        succeed(services, job, results)

    return outcome


def run_sync(client: Any, services: Services, process: str, body: dict[str, Any]) -> Any:
    outcome = ndvi_outcome(services) if process == "ndvi" else echo_outcome(services)
    with StandInWorker(services, outcome):
        return client.post(f"/processes/{process}/execution", json=body)


def test_raw_file_output_by_value_is_streamed(client, services):
    body = {"inputs": NDVI_IMAGE, "outputs": {"quicklook": {}}, "response": "raw"}
    r = run_sync(client, services, "ndvi", body)
    assert r.status_code == 200 and r.mimetype == "image/png" and r.data == b"\x89PNG-bytes"
    assert "rel=monitor" in r.headers["Link"]


def test_raw_outputs_by_reference_are_link_headers(client, services):
    outputs = {
        "ndvi": {"transmissionMode": "reference"},
        "quicklook": {"transmissionMode": "reference"},
    }
    r = run_sync(
        client, services, "ndvi", {"inputs": NDVI_IMAGE, "outputs": outputs, "response": "raw"}
    )
    assert r.status_code == 204 and r.data == b""
    links = r.headers.getlist("Link")
    assert len(links) == 3  # monitor + one per output
    job_url = links[0][1:].split(">")[0]
    assert links[0].endswith("rel=monitor")
    assert links[1].startswith(f"<{job_url}/outputs/ndvi.tif>;") and REL_RESULTS in links[1]
    assert 'title="quicklook"' in links[2] and 'type="image/png"' in links[2]


def related_parts(response: Any) -> list[Any]:
    """The parts of a ``multipart/related`` answer, read by the standard MIME parser."""
    head = b"Content-Type: " + response.headers["Content-Type"].encode() + b"\r\n\r\n"
    message = email.message_from_bytes(head + response.data, policy=email.policy.default)
    assert message.get_content_type() == "multipart/related"
    return list(message.iter_parts())


def test_raw_several_outputs_are_multipart_related(client, services):
    outputs = {"statistics": {}, "quicklook": {"transmissionMode": "reference"}}
    r = run_sync(
        client, services, "ndvi", {"inputs": NDVI_IMAGE, "outputs": outputs, "response": "raw"}
    )
    assert r.status_code == 200 and r.mimetype == "multipart/related"
    assert r.mimetype_params["type"] == "image/png"  # the first part's (RFC 2387 'type')
    parts = related_parts(r)
    # parts in the process description's output order
    assert [p["Content-ID"] for p in parts] == ["<quicklook>", "<statistics>"]
    assert parts[0]["Content-Location"].endswith("/outputs/quicklook.png")
    assert parts[0].get_content_type() == "image/png" and parts[0].get_content() == b""
    assert parts[1].get_content_type() == "application/json"
    assert parts[1].get_content() == b'{"valid_pixels": 4}'


def test_raw_multipart_parts_carry_each_outputs_own_bytes(client, services):
    """A GeoTIFF part byte for byte (CR/LF untouched), the text outputs as text."""
    tiff = b"II*\x00\n\r\n\x00\xff\r"

    def outcome(job: Job) -> None:
        href = publish(services, job, "ndvi.tif", tiff)
        results = {"ndvi": {"href": href, "type": "image/tiff; application=geotiff"}}
        succeed(services, job, {**results, "statistics": {"mean": 0.5}})

    outputs = {"ndvi": {}, "statistics": {}}
    body = {"inputs": NDVI_IMAGE, "outputs": outputs, "response": "raw"}
    with StandInWorker(services, outcome):
        r = client.post("/processes/ndvi/execution", json=body)
    parts = related_parts(r)
    assert [(p.get_content_type(), p["Content-ID"]) for p in parts] == [
        ("image/tiff", "<ndvi>"),
        ("application/json", "<statistics>"),
    ]
    assert parts[0].get_param("application") == "geotiff"
    assert parts[0].get_content() == tiff


def test_raw_two_echo_outputs_are_two_parts_of_their_own_types(client, services):
    body = {"inputs": {"string_input": "hi", "xml_input": "<a>1</a>"}, "response": "raw"}
    with StandInWorker(services, echo_outcome(services)):
        r = client.post("/processes/echo/execution", json=body)
    parts = related_parts(r)
    assert [(p["Content-ID"], p.get_content_type()) for p in parts] == [
        ("<xml_output>", "application/xml"),
        ("<string_output>", "text/plain"),
    ]
    assert [p.get_content() for p in parts] == [b"<a>1</a>", "hi"]


def test_raw_without_any_output_is_204(client, services):
    r = run_sync(client, services, "echo", {"inputs": {}, "response": "raw"})
    assert r.status_code == 204


def test_results_endpoint_answers_raw_when_raw_was_asked(client, services):
    """/req/core/job-results-async-raw-mixed-multi: the execute request named raw."""
    job = new_job(
        services,
        process="ndvi",
        response="raw",
        outputs_request={"quicklook": {}, "statistics": {}},
    )
    ndvi_outcome(services)(job)
    r = client.get(f"/jobs/{job.id}/results")
    assert r.status_code == 200 and r.mimetype == "multipart/related"
    parts = related_parts(r)
    assert [(p["Content-ID"], p.get_content_type()) for p in parts] == [
        ("<quicklook>", "image/png"),
        ("<statistics>", "application/json"),
    ]
    assert parts[0].get_content() == b"\x89PNG-bytes"


def test_results_endpoint_answers_the_document_unless_raw_was_asked(client, services):
    body = {"inputs": NDVI_IMAGE, "outputs": {"quicklook": {}, "statistics": {}}}
    submitted = client.post("/processes/ndvi/execution", json=body, headers=ASYNC)
    job = services.store.get(submitted.get_json()["jobID"])
    assert job.response == "document"  # 'response' left out: the document at /results
    ndvi_outcome(services)(job)
    r = client.get(f"/jobs/{job.id}/results")
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.get_json() == {
        "quicklook": {"href": f"{BASE}/jobs/{job.id}/outputs/quicklook.png", "type": "image/png"},
        "statistics": {"valid_pixels": 4},
    }


# -- dismiss, visibility, published files --------------------------------------------


def test_dismiss_an_accepted_job(client, services, components):
    job = new_job(services)
    r = client.delete(f"/jobs/{job.id}")
    assert r.status_code == 200
    doc = r.get_json()
    validate(doc, "statusInfo", components)
    assert doc["status"] == "dismissed" and doc["jobID"] == job.id
    assert client.get(f"/jobs/{job.id}").get_json()["status"] == "dismissed"
    row = services.store.get(job.id)
    assert row.state is JobState.DISMISSED and not row.cancel_pending
    assert client.get(f"/jobs/{job.id}/results").status_code == 404


def assert_no_such_job(r: Any) -> None:
    assert r.status_code == 404 and r.mimetype == "application/problem+json"
    assert r.get_json()["type"].endswith("/no-such-job")


@pytest.mark.parametrize("outcome", ["successful", "failed"])
def test_dismiss_a_finished_job_removes_it(client, services, components, outcome):
    """/req/dismiss/job-dismiss-success and -status: 200 'dismissed', then the job is gone."""
    job = new_job(services)
    services.store.update(job.id, JobUpdate(scheduler_job_id="4242", workspace="/work/alice/ws"))
    if outcome == "successful":
        href = publish(services, job, "result.txt", b"data")
        succeed(services, job, {"string_output": {"href": href, "type": "text/plain"}})
    else:
        fail(services, job)
    finished = services.store.get(job.id).finished
    kept = new_job(services)  # another job, listed before and after

    r = client.delete(f"/jobs/{job.id}")
    assert r.status_code == 200
    doc = r.get_json()
    validate(doc, "statusInfo", components)
    assert doc["status"] == "dismissed" and doc["jobID"] == job.id
    assert not any(link["rel"] == REL_RESULTS for link in doc["links"])

    for gone in (
        client.get(f"/jobs/{job.id}"),
        client.get(f"/jobs/{job.id}/results"),
        client.get(f"/jobs/{job.id}/outputs/result.txt"),
        client.get(f"/stac/items/{job.id}.json"),
        client.delete(f"/jobs/{job.id}"),  # a second dismiss: nothing left to dismiss
    ):
        assert_no_such_job(gone)
    assert client.get(f"/jobs/{job.id}?f=html").status_code == 404
    for query in ("", "?status=dismissed", f"?status={outcome}", "?status=dismissed,accepted"):
        listed = {j["jobID"] for j in client.get(f"/jobs{query}").get_json()["jobs"]}
        assert job.id not in listed
    assert {j["jobID"] for j in client.get("/jobs").get_json()["jobs"]} == {kept.id}
    # the row stays for accounting: same finish time, clean-up owed to the worker
    row = services.store.get(job.id)
    assert row.state is JobState.REMOVED and row.finished == finished
    assert row.scheduler_job_id == "4242" and not row.cancel_pending
    assert job.id in {j.id for j in services.store.pending_cancels()}


def test_dismissing_a_dismissed_job_removes_it(client, services):
    job = new_job(services)
    first = client.delete(f"/jobs/{job.id}")
    assert first.status_code == 200 and first.get_json()["status"] == "dismissed"
    assert client.get(f"/jobs/{job.id}").get_json()["status"] == "dismissed"  # still visible
    second = client.delete(f"/jobs/{job.id}")
    assert second.status_code == 200 and second.get_json()["status"] == "dismissed"
    assert_no_such_job(client.get(f"/jobs/{job.id}"))
    assert services.store.get(job.id).state is JobState.REMOVED


def test_another_owners_job_is_not_found(client, services):
    job = new_job(services, owner=BOB)
    succeed(services, job, {"string_output": "secret"})
    publish(services, job, "x.txt", b"secret")
    for r in (
        client.get(f"/jobs/{job.id}"),
        client.get(f"/jobs/{job.id}/results"),
        client.delete(f"/jobs/{job.id}"),
        client.get(f"/jobs/{job.id}/outputs/x.txt"),
    ):
        assert r.status_code == 404
        assert r.get_json()["type"].endswith("/no-such-job")
    assert services.store.get(job.id).state is JobState.SUCCESSFUL
    assert client.get("/jobs").get_json()["jobs"] == []


def test_published_output_file(client, services, tmp_path):
    job = new_job(services)
    href = publish(services, job, "result.tif", b"II*\x00")
    succeed(services, job, {"ndvi": {"href": href, "type": "image/tiff; application=geotiff"}})
    r = client.get(f"/jobs/{job.id}/outputs/result.tif")
    assert r.status_code == 200 and r.data == b"II*\x00"
    assert r.headers["Content-Type"].startswith("image/tiff")
    (tmp_path / "secret.txt").write_text("top secret")
    for bad in (
        "../secret.txt",
        "..%2Fsecret.txt",
        "%2e%2e/%2e%2e/secret.txt",
        "sub/result.tif",
        ".hidden",
        "missing.tif",
    ):
        r = client.get(f"/jobs/{job.id}/outputs/{bad}")
        assert r.status_code == 404, bad
        assert b"top secret" not in r.data


def test_manager_plugin_inside_a_request(app, services):
    job = new_job(services)
    mine_done = new_job(services)
    succeed(services, mine_done, {"string_output": "hi"})
    new_job(services, owner=BOB)
    manager = app.extensions["hpcgw.ogcapi"].api.manager
    assert isinstance(manager, GatewayManager)
    with app.test_request_context("/jobs"):
        app.preprocess_request()  # resolves the Principal like a real request
        listing = manager.get_jobs(limit=1, offset=1)
        assert listing["numberMatched"] == 2 and len(listing["jobs"]) == 1
        assert manager.get_job(job.id)["status"] == "accepted"
        assert manager.get_job_result(mine_done.id) == ("application/json", {"string_output": "hi"})
        assert manager.delete_job(job.id) is True
        assert services.store.get(job.id).state is JobState.DISMISSED
        job_id, _, _, status, _ = manager.execute_process("echo", {"string_input": "x"})
        assert services.store.get(job_id).owner == ME and status.value == "accepted"
