"""Job end noticed from the job's end record, with the scheduler's word as the only evidence.

The worker here runs its cycles by hand: one full cycle (dispatch + a scheduler
poll), then only the fast cycles that run between polls. The scheduler poll
interval is an hour, so whatever finishes a job in the fast cycles was started
by its end record -- and whatever a record alone cannot do, it does not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.app import build_worker
from gateway.identity.auth import Principal
from gateway.jobs.records import Job
from gateway.jobs.states import JobState
from gateway.services import Services
from gateway.workflow.batch import END_RECORD
from gateway.workflow.worker import Worker
from tests.conftest import sacct_field
from tests.polling import eventually

pytestmark = pytest.mark.slurm

ALICE = Principal(sub="sub-alice", username="alice", hpc_login="alice", roles=frozenset())


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"worker": {"poll_interval_seconds": 3600, "backoff_base_seconds": 0.5}}


@pytest.fixture
def worker(cluster: str, services: Services) -> Worker:
    return build_worker(services, worker_id="end-records")


def _submitted(services: Services, worker: Worker, inputs: dict[str, object]) -> Job:
    """A job dispatched by one full cycle (which also takes the site's monitor lease)."""
    job = services.jobs.submit(ALICE, "echo", {"inputs": inputs})
    worker.run_once()
    current = services.store.get(job.id)
    assert current.scheduler_job_id, current.message
    return current


def _until_final(services: Services, job_id: str, cycle: Callable[[], object], what: str) -> Job:
    """Run ``cycle`` until the job is final; the final job."""

    def final() -> Job | None:
        cycle()
        current = services.store.get(job_id)
        return current if current.final else None

    return eventually(final, 90, f"job {job_id} to end {what}", every=0.1)


def _fast_until_final(services: Services, worker: Worker, job_id: str) -> Job:
    return _until_final(services, job_id, worker.run_fast, "through its end record")


def _slurm_ended(scheduler_id: str) -> None:
    eventually(
        lambda: sacct_field(scheduler_id, "State") == "COMPLETED",
        90,
        f"Slurm job {scheduler_id} to complete",
        every=0.3,
    )


def test_the_end_record_ends_the_job_between_polls(services: Services, worker: Worker) -> None:
    job = _submitted(services, worker, {"string_input": "fast end"})
    done = _fast_until_final(services, worker, job.id)
    assert done.state is JobState.SUCCESSFUL, done.message
    assert done.results == {"string_output": "fast end"}
    assert done.scheduler_state == "COMPLETED"
    assert (Path(done.workspace or "") / END_RECORD).read_text() == "0\n"


def test_a_failing_job_is_failed_from_the_schedulers_answer(
    services: Services, worker: Worker
) -> None:
    job = _submitted(services, worker, {"string_input": "x", "exit_code": 3})
    done = _fast_until_final(services, worker, job.id)
    assert done.state is JobState.FAILED
    assert "exit code 3" in (done.message or "")


def test_a_forged_record_changes_nothing(services: Services, worker: Worker) -> None:
    """A record written while the job runs (by its own code, say) claims success in
    vain: the job stays running, and is neither published nor finalised."""
    job = _submitted(services, worker, {"string_input": "x", "pause": 120})
    try:
        eventually(
            lambda: sacct_field(job.scheduler_job_id or "", "State") == "RUNNING",
            60,
            "the paused job to run",
            every=0.3,
        )

        def gateway_sees_it_running() -> bool:
            worker.run_once()
            return services.store.get(job.id).state is JobState.RUNNING

        eventually(gateway_sees_it_running, 60, "the gateway to see the job running")
        (Path(job.workspace or "") / END_RECORD).write_text("0\n")
        for _ in range(15):  # spaced, so the polls the record prompts really happen
            worker.run_fast()
            time.sleep(0.1)
        current = services.store.get(job.id)
        assert current.state is JobState.RUNNING, current.message
        assert current.scheduler_state == "RUNNING"
        assert current.results is None
    finally:
        services.jobs.dismiss(ALICE, job.id)
        worker.run_once()


def test_without_a_record_the_poll_still_ends_the_job(services: Services, worker: Worker) -> None:
    """A job that wrote no record (killed, or its record lost) waits for the scheduler
    poll, which finishes it as before."""
    job = _submitted(services, worker, {"string_input": "polled"})
    _slurm_ended(job.scheduler_job_id or "")
    (Path(job.workspace or "") / END_RECORD).unlink()
    for _ in range(10):
        worker.run_fast()
    assert not services.store.get(job.id).final

    done = _until_final(services, job.id, worker.run_once, "through the scheduler poll")
    assert done.state is JobState.SUCCESSFUL, done.message
    assert done.results == {"string_output": "polled"}
