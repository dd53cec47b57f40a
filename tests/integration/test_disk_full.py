"""A filesystem full -- the publication store or the job workspaces: a clear failure, then recovery.

The gateway's publication store is a small tmpfs made by the test and filled
to the last byte. A real echo job on the 24.11 cluster asks for its outputs
by reference, so the finaliser must write files into the full store: the job
fails with a message that says the store is full, its results answer that
failure (an OGC exception, no stack trace), and no file of it is served --
not even the empty file the failed write created. Once space is back the next
job publishes and serves its outputs normally.

The job workspaces' filesystem full (another tmpfs, as the site's
``workspace_root``): the dispatcher cannot write the job's ``inputs.json``, so
the job fails before anything reaches Slurm, saying so; the next job runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from gateway.app import create_app
from gateway.jobs.states import JobState
from gateway.services import Services
from gateway.workflow.batch import job_name
from tests.clusters import MESOCENTRE
from tests.conftest import WORK_ROOT, worker_thread
from tests.faults import fill, rest_site, site_services, slurm_jobs_named, small_filesystem
from tests.integration.test_workflow import wait_for

pytestmark = pytest.mark.slurm

BY_REFERENCE = {"string_output": {"transmissionMode": "reference"}}
OUTPUT = "string_output.txt"


def _execute(client: FlaskClient, text: str) -> str:
    body = {"inputs": {"string_input": text}, "outputs": BY_REFERENCE}
    answer = client.post(
        "/processes/echo/execution", json=body, headers={"Prefer": "respond-async"}
    )
    assert answer.status_code == 201, answer.get_data(as_text=True)
    return str(answer.headers["Location"]).rsplit("/", 1)[1]


def _finished(services: Services, job_id: str) -> JobState:
    return wait_for(services, job_id, {JobState.SUCCESSFUL, JobState.FAILED}, 180).state


def test_a_full_publication_store_fails_the_job_cleanly_and_the_next_job_works(
    tmp_path: Path,
) -> None:
    store = tmp_path / "published"
    with (
        small_filesystem(store, "256k"),
        site_services(tmp_path, MESOCENTRE, publication={"root": str(store)}) as services,
        worker_thread(services),
    ):
        client = create_app(services.settings, services).test_client()
        filler = fill(store)
        job_id = _execute(client, "no room " * 100)
        assert _finished(services, job_id) is JobState.FAILED
        status = client.get(f"/jobs/{job_id}").get_json()
        assert status["status"] == "failed"
        assert "publication store is full" in status["message"], status["message"]
        results = client.get(f"/jobs/{job_id}/results")
        text = results.get_data(as_text=True)
        assert results.status_code >= 400 and "Traceback" not in text
        assert "publication store is full" in results.get_json()["detail"]
        assert client.get(f"/jobs/{job_id}/outputs/{OUTPUT}").status_code == 404
        assert not (store / job_id).exists()  # nothing left to link or serve
        assert [p.name for p in store.iterdir() if p.name != filler.name] in ([], [".partial"])

        filler.unlink()  # space is back
        next_id = _execute(client, "room again")
        assert _finished(services, next_id) is JobState.SUCCESSFUL
        href = client.get(f"/jobs/{next_id}/results").get_json()["string_output"]["href"]
        assert href.endswith(f"/jobs/{next_id}/outputs/{OUTPUT}")
        served = client.get(f"/jobs/{next_id}/outputs/{OUTPUT}")
        assert served.status_code == 200 and served.get_data(as_text=True) == "room again"
        assert served.mimetype == "text/plain"  # the literal as its own bytes


def test_a_full_workspace_filesystem_fails_the_job_before_slurm_and_the_next_job_works(
    tmp_path: Path,
) -> None:
    work = WORK_ROOT / f"full-{tmp_path.name}"  # where alice's jobs can reach it
    with small_filesystem(work, "256k"):
        work.chmod(0o755)
        site = rest_site(MESOCENTRE, workspace_root=str(work))
        with (
            site_services(tmp_path, MESOCENTRE, sites={MESOCENTRE.name: site}) as services,
            worker_thread(services),
        ):
            client = create_app(services.settings, services).test_client()
            filler = fill(work)
            job_id = _execute(client, "no room")
            assert _finished(services, job_id) is JobState.FAILED
            message = client.get(f"/jobs/{job_id}").get_json()["message"]
            assert message.startswith("Submission to the cluster failed: cannot write")
            assert "No space left on device" in message
            assert slurm_jobs_named(MESOCENTRE, job_name(job_id)) == []  # never submitted

            filler.unlink()  # space is back
            next_id = _execute(client, "room again")
            assert _finished(services, next_id) is JobState.SUCCESSFUL
