"""PostgreSQL restarted under a running worker: it survives, its pool recovers, nothing is lost.

The API's side of a job-store outage (503 + ``Retry-After``) is
``test_store_outage.py``; this is the worker's. A real worker thread
dispatches and follows real jobs on the 24.11 cluster with its job store on
the dev PostgreSQL, which is stopped (``pg_ctlcluster stop -m fast``: every
connection is cut) and started again while those jobs are being submitted.
The worker's cycles fail meanwhile -- logged, never fatal -- and afterwards:
every job accepted before the restart ends successful with exactly one Slurm
job (a submission whose record could not be written is recorded once the
store is back, or found by name and adopted), and a job accepted after it
runs too, so the worker and its pool came back by themselves.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.jobs.states import JobState
from gateway.workflow.batch import job_name
from tests.clusters import MESOCENTRE
from tests.conftest import worker_thread
from tests.faults import scratch_database, site_services, slurm_jobs_named, stopped
from tests.integration.test_slurm_faults import ENDED, _submit
from tests.integration.test_workflow import wait_for
from tests.polling import eventually

pytestmark = pytest.mark.slurm

#: Short leases: a job claimed just before the restart is taken again soon after.
WORKER = {"poll_interval_seconds": 0.3, "backoff_base_seconds": 0.5, "lease_seconds": 15}


def test_a_postgresql_restart_under_load_loses_nothing_and_the_worker_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        scratch_database() as url,
        site_services(tmp_path, MESOCENTRE, database={"url": url}, worker=WORKER) as services,
        worker_thread(services),
    ):
        jobs = [_submit(services, f"before-{i}", pause=2) for i in range(6)]
        eventually(
            lambda: any(services.store.get(j.id).state is not JobState.ACCEPTED for j in jobs),
            60,
            "the worker to start dispatching",
            every=0.05,
        )
        with stopped("postgresql"):
            eventually(
                lambda: "worker cycle failed" in caplog.text,
                60,
                "the worker to meet the outage",
            )
        after = _submit(services, "after")  # the API's pool reconnected
        done = [wait_for(services, j.id, ENDED, 300) for j in [*jobs, after]]
    assert [j.state for j in done] == [JobState.SUCCESSFUL] * 7, [j.message for j in done]
    assert [j.results for j in done] == [{"string_output": f"before-{i}"} for i in range(6)] + [
        {"string_output": "after"}
    ]
    for job in done:
        assert slurm_jobs_named(MESOCENTRE, job_name(job.id)) == [job.scheduler_job_id], job.id
