"""Leases and late answers: a worker that stalls past its lease while submitting, against
the REAL clusters.

Killed workers are the easy case (``tests/e2e/test_process_kills.py``): they do
nothing more. A worker that is *stalled* -- swapped out, paused, in a long GC --
wakes up and carries on. Another worker may have taken its job over meanwhile,
looked it up at the site and submitted or adopted it; what the stalled one
does next must not add a second Slurm job nor undo the other's work.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.app import build_worker
from gateway.jobs.extra import Recovery
from gateway.jobs.records import Job, JobUpdate
from gateway.jobs.states import JobState
from gateway.services import Services
from gateway.workflow.batch import job_name
from gateway.workflow.dispatcher import Abandoned, Dispatcher, Submitted
from gateway.workflow.worker import Worker
from tests.clusters import DevCluster
from tests.integration import test_submit_once as once
from tests.polling import eventually

pytestmark = pytest.mark.slurm

ALICE = once.ALICE
#: Services on each dev cluster in turn (the fixture of ``test_submit_once``).
site_services = once.site_services


def _stall_past_lease(services: Services, job_id: str) -> None:
    """What a worker frozen longer than its lease (GC, swap, SIGSTOP) finds on waking."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    services.store.update(job_id, JobUpdate(lease_until=past))


def _claimed_and_staging(
    services: Services, dispatcher: Dispatcher, text: str
) -> tuple[Job, tuple[str, dict[str, Any]]]:
    """A new job claimed by ``dispatcher`` and moved to ``staging`` (workspace, extra)."""
    services.jobs.submit(ALICE, "echo", {"inputs": {"string_input": text}})
    [claimed] = services.store.claim(dispatcher.worker_id, [JobState.ACCEPTED], 1, 60.0)
    started = dispatcher._begin(claimed)
    assert started is not None
    return claimed, started


def _accounted(dev: DevCluster, name: str) -> list[str]:
    """The Slurm jobs of that name in accounting, once slurmdbd has any (it lags)."""

    def named() -> list[str]:
        out = dev.run("sacct", "-X", "-n", "-P", "-S", "now-1hours", "--name", name, "-o", "JobID")
        return out.stdout.split()

    return eventually(named, 60, f"{name} in sacct", every=1)


def _run_to_the_end(services: Services, worker: Worker, job_id: str) -> JobState:
    def ended() -> JobState | None:
        worker.run_once()
        state = services.store.get(job_id).state
        return state if state.final else None

    return eventually(ended, 90, "the job to end", every=0.5)


def test_a_worker_stalled_past_its_lease_does_not_submit_a_job_taken_over(
    site_services: tuple[Services, DevCluster],
) -> None:
    services, dev = site_services
    stalled, other = build_worker(services).dispatcher, build_worker(services)
    claimed, started = _claimed_and_staging(services, stalled, "stalled")
    job = claimed
    _stall_past_lease(services, job.id)
    other.dispatcher.run_once()  # takes it over: looked up, not found, submitted
    taken = services.store.get(job.id)
    assert taken.state is JobState.QUEUED and taken.scheduler_job_id

    outcome = stalled._submit_safely(claimed, *started)  # the stalled worker wakes up
    assert isinstance(outcome, Abandoned)
    stalled._apply(claimed, *started, outcome)

    assert _run_to_the_end(services, other, job.id) is JobState.SUCCESSFUL
    assert _accounted(dev, job_name(job.id)) == [taken.scheduler_job_id]


def test_a_submission_adopted_by_another_worker_meanwhile_is_not_cancelled(
    site_services: tuple[Services, DevCluster],
) -> None:
    """The stalled worker got its Slurm job in, then lost its lease before recording it;
    another worker found that Slurm job and adopted it. When the first one records
    its outcome it must leave the job alone (it used to cancel the adopted Slurm job)."""
    services, dev = site_services
    stalled, other = build_worker(services).dispatcher, build_worker(services)
    claimed, started = _claimed_and_staging(services, stalled, "adopted")
    job = claimed
    outcome = stalled._submit_safely(claimed, *started)
    assert isinstance(outcome, Submitted)
    _stall_past_lease(services, job.id)
    other.dispatcher.run_once()  # looks it up: found, adopted
    adopted = services.store.get(job.id)
    assert adopted.scheduler_job_id == outcome.scheduler_id
    assert Recovery.of(adopted.extra) is not None

    stalled._apply(claimed, *started, outcome)  # records late: must change nothing

    assert not services.store.get(job.id).cancel_pending
    assert _run_to_the_end(services, other, job.id) is JobState.SUCCESSFUL
    done = services.store.get(job.id)
    assert f"Slurm job {outcome.scheduler_id} was recovered after a restart" in (done.message or "")
    assert _accounted(dev, job_name(job.id)) == [outcome.scheduler_id]
    assert dev.sacct_settled(outcome.scheduler_id, "State", "COMPLETED") == "COMPLETED"
