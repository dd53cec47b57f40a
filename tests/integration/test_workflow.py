"""The job workflow against the real dev cluster: dispatch, monitor, finalise, dismiss, resume."""

from __future__ import annotations

import pwd
import time
from pathlib import Path

import pytest

from gateway.app import build_worker
from gateway.identity.auth import Principal
from gateway.jobs.records import Job
from gateway.jobs.states import JobState
from gateway.services import Services
from gateway.workflow.worker import Worker
from tests.conftest import sacct_field, squeue_ids
from tests.polling import eventually

pytestmark = pytest.mark.slurm

ALICE = Principal(sub="sub-alice", username="alice", hpc_login="alice", roles=frozenset())
BOB = Principal(sub="sub-bob", username="bob", hpc_login="bob", roles=frozenset())


def wait_for(services: Services, job_id: str, states: set[JobState], timeout: float = 120):
    def reached() -> Job | None:
        job = services.store.get(job_id)
        return job if job.state in states else None

    def stuck() -> str:
        job = services.store.get(job_id)
        return f"job {job_id} to reach {sorted(states)} (stuck in {job.state}: {job.message})"

    return eventually(reached, timeout, stuck)


def test_echo_runs_as_the_user_and_echoes(services: Services, running_worker: Worker) -> None:
    job = services.jobs.submit(
        ALICE, "echo", {"inputs": {"string_input": "hi", "integer_input": 7}}
    )
    done = wait_for(services, job.id, {JobState.SUCCESSFUL, JobState.FAILED})
    assert done.state is JobState.SUCCESSFUL, done.message
    assert done.results == {"string_output": "hi", "integer_output": 7}
    assert done.scheduler_job_id
    assert sacct_field(done.scheduler_job_id, "User") == "alice"
    workspace = Path(done.workspace or "")
    assert workspace.stat().st_uid == pwd.getpwnam("alice").pw_uid
    assert (workspace / "outputs.json").stat().st_uid == pwd.getpwnam("alice").pw_uid


def test_each_user_runs_under_own_login(services: Services, running_worker: Worker) -> None:
    a = services.jobs.submit(ALICE, "echo", {"inputs": {"string_input": "a"}})
    b = services.jobs.submit(BOB, "echo", {"inputs": {"string_input": "b"}})
    for job, login in ((a, "alice"), (b, "bob")):
        done = wait_for(services, job.id, {JobState.SUCCESSFUL, JobState.FAILED})
        assert done.state is JobState.SUCCESSFUL, done.message
        assert sacct_field(done.scheduler_job_id or "", "User") == login


def test_failing_process_reports_exit_code_and_stderr(
    services: Services, running_worker: Worker
) -> None:
    job = services.jobs.submit(ALICE, "echo", {"inputs": {"string_input": "x", "exit_code": 3}})
    done = wait_for(services, job.id, {JobState.SUCCESSFUL, JobState.FAILED})
    assert done.state is JobState.FAILED
    assert "exit code 3" in (done.message or "")
    assert done.error and done.error["detail"] == done.message


def test_dismiss_cancels_running_slurm_job(services: Services, running_worker: Worker) -> None:
    job = services.jobs.submit(ALICE, "echo", {"inputs": {"string_input": "x", "pause": 120}})
    running = wait_for(services, job.id, {JobState.RUNNING, JobState.QUEUED})
    assert running.scheduler_job_id
    dismissed = services.jobs.dismiss(ALICE, job.id)
    assert dismissed.state is JobState.DISMISSED
    eventually(
        lambda: running.scheduler_job_id not in squeue_ids(), 30, "the Slurm job to leave squeue"
    )
    assert sacct_field(running.scheduler_job_id, "State").startswith("CANCELLED")


def test_progress_is_reported_while_running(services: Services, running_worker: Worker) -> None:
    job = services.jobs.submit(ALICE, "echo", {"inputs": {"string_input": "x", "pause": 6}})
    progress_seen = set()

    def final() -> Job | None:
        current = services.store.get(job.id)
        if current.state is JobState.RUNNING and current.progress:
            progress_seen.add(current.progress)
        return current if current.final else None

    current = eventually(final, 60, "the paused echo job to finish", every=0.3)
    assert current.state is JobState.SUCCESSFUL, current.message
    assert any(0 < p < 100 for p in progress_seen), progress_seen


def test_a_new_worker_resumes_after_a_crash(cluster: str, services: Services) -> None:
    """A worker that dies after claiming leaves the job to the next worker, submitted once."""
    job = services.jobs.submit(ALICE, "echo", {"inputs": {"string_input": "resume"}})
    crashed = services.store.claim("crashed-worker", [JobState.ACCEPTED], 1, lease_seconds=0.5)
    assert [j.id for j in crashed] == [job.id]
    time.sleep(0.6)
    worker = build_worker(services, worker_id="second")

    def resumed() -> Job | None:
        worker.run_once()
        current = services.store.get(job.id)
        return current if current.final else None

    done = eventually(resumed, 90, "the second worker to finish the job", every=0.3)
    assert done.state is JobState.SUCCESSFUL, done.message
    assert done.results == {"string_output": "resume"}
