"""Dismissing a finished job on the real dev cluster: removed from the API, files cleaned.

OGC API - Processes /req/dismiss/job-dismiss-status: a successful (or failed)
job that is dismissed is removed and no longer accessible; the gateway's
worker (Cleaner) deletes what it left on the cluster and its published outputs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.app import create_app
from gateway.jobs.states import JobState
from gateway.services import Services
from gateway.workflow.worker import Worker
from tests.polling import eventually

pytestmark = pytest.mark.slurm


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    eventually(predicate, timeout, what)


def test_dismissing_a_successful_job_removes_it(services: Services, running_worker: Worker) -> None:
    client = create_app(services.settings, services).test_client()
    body = {
        "inputs": {"string_input": "hi"},
        "outputs": {"string_output": {"transmissionMode": "reference"}},
        "response": "document",
    }
    accepted = client.post(
        "/processes/echo/execution", json=body, headers={"Prefer": "respond-async"}
    )
    assert accepted.status_code == 201, accepted.get_json()
    job_id = accepted.get_json()["jobID"]
    _wait(lambda: services.store.get(job_id).final, 180, "the echo job to finish")
    done = services.store.get(job_id)
    assert done.state is JobState.SUCCESSFUL, done.message
    workspace = Path(done.workspace or "")
    assert workspace.is_dir()
    base = services.settings.server.base_url.rstrip("/")
    output = str((done.results or {})["string_output"]["href"]).removeprefix(base)
    assert client.get(output).status_code == 200
    published = services.publication_root / job_id
    assert published.is_dir()

    dismissed = client.delete(f"/jobs/{job_id}")
    assert dismissed.status_code == 200 and dismissed.get_json()["status"] == "dismissed"

    for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/results", output):
        gone = client.get(path)
        assert gone.status_code == 404 and gone.get_json()["type"].endswith("/no-such-job"), path
    assert job_id not in {j["jobID"] for j in client.get("/jobs").get_json()["jobs"]}
    _wait(lambda: not workspace.exists(), 60, "the worker to remove the workspace")
    _wait(lambda: not published.exists(), 60, "the worker to remove the published outputs")
    row = services.store.get(job_id)
    assert row.state is JobState.REMOVED
    assert (row.scheduler_job_id, row.finished) == (done.scheduler_job_id, done.finished)
