"""At most one Slurm job per gateway job, whatever crashes: against the REAL clusters.

The crash reproduced here is the one that ran jobs twice: the worker submits a
job and dies before recording the Slurm id, so the job stays in ``staging``
(the recorded intent). By the time another worker claims it the Slurm job has
run, ended and been purged from slurmctld (it is in accounting only). The
dispatcher must find it by name -- one lookup per site for all such jobs --
and adopt it, never submit a second one; a job that was never submitted is
submitted normally, in the same cycle.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.app import build_worker
from gateway.identity.auth import Principal
from gateway.jobs.states import JobState
from gateway.services import Services
from gateway.workflow.batch import job_name
from gateway.workflow.worker import Worker
from tests.clusters import CLUSTERS, DevCluster
from tests.faults import site_services as on_site
from tests.faults import slurm_jobs_named
from tests.integration.test_workflow import wait_for
from tests.polling import eventually

pytestmark = pytest.mark.slurm

ALICE = Principal(sub="sub-alice", username="alice", hpc_login="alice", roles=frozenset())


@pytest.fixture(params=list(CLUSTERS))
def site_services(
    request: pytest.FixtureRequest, cluster: str, tmp_path: Path
) -> Iterator[tuple[Services, DevCluster]]:
    dev = CLUSTERS[request.param]
    with on_site(tmp_path, dev) as services:
        yield services, dev


def _crash_after_submitting(services: Services, worker: Worker, job_id: str) -> str:
    """What a worker killed right after ``sbatch`` leaves: a Slurm job, a job in staging."""
    dispatcher = worker.dispatcher
    [claimed] = services.store.claim(dispatcher.worker_id, [JobState.ACCEPTED], 1, 60.0)
    started = dispatcher._begin(claimed)
    assert started is not None
    workspace, extra = started
    slurm_id = dispatcher._submit(claimed, workspace, extra)
    services.store.release(job_id)  # the lease has expired: any worker may claim it
    return slurm_id


def test_a_job_submitted_before_a_crash_is_adopted_not_submitted_again(
    site_services: tuple[Services, DevCluster],
) -> None:
    services, dev = site_services
    worker = build_worker(services)
    crashed = services.jobs.submit(ALICE, "echo", {"inputs": {"string_input": "once"}})
    fresh = services.jobs.submit(ALICE, "echo", {"inputs": {"string_input": "fresh"}})
    slurm_id = _crash_after_submitting(services, worker, crashed.id)
    assert services.store.get(crashed.id).state is JobState.STAGING
    # the lost Slurm job runs, ends and leaves slurmctld: only accounting knows it now
    eventually(
        lambda: not dev.in_controller(slurm_id) and slurm_jobs_named(dev, job_name(crashed.id)),
        180,
        f"Slurm job {slurm_id} to leave slurmctld",
        every=2,
    )

    worker.dispatcher.run_once()  # one cycle: the staging job is looked up, the fresh one sent

    adopted = services.store.get(crashed.id)
    assert adopted.state is JobState.QUEUED and adopted.scheduler_job_id == slurm_id
    assert "adopted, not submitted again" in (adopted.message or "")
    sent = services.store.get(fresh.id)
    assert sent.state is JobState.QUEUED and sent.scheduler_job_id not in (None, slurm_id)

    def both_ended() -> bool:  # followed to the end by the real monitor and finaliser
        worker.run_once()
        return all(services.store.get(j).state.final for j in (crashed.id, fresh.id))

    eventually(both_ended, 60, "both jobs to end", every=0.5)
    done = wait_for(services, crashed.id, {JobState.SUCCESSFUL, JobState.FAILED}, timeout=5)
    assert done.state is JobState.SUCCESSFUL and done.results == {"string_output": "once"}
    assert slurm_jobs_named(dev, job_name(crashed.id)) == [slurm_id]  # exactly one, ever
    assert dev.sacct_field(slurm_id, "User") == "alice"


def test_jobs_in_staging_are_looked_up_in_one_call_per_site(
    site_services: tuple[Services, DevCluster],
) -> None:
    services, dev = site_services
    worker = build_worker(services)
    jobs = [
        services.jobs.submit(ALICE, "echo", {"inputs": {"string_input": str(i)}}) for i in range(3)
    ]
    for _ in jobs:  # three workers died while staging: nothing reached Slurm
        [claimed] = services.store.claim("doomed-worker", [JobState.ACCEPTED], 1, 60.0)
        worker.dispatcher._begin(claimed)
        services.store.release(claimed.id)
    adapter = services.sites.adapter(dev.name)
    calls: list[list[str]] = []
    real = adapter.find_by_names

    def counted(names: list[str], since: object) -> object:
        calls.append(sorted(names))
        return real(names, since)  # type: ignore[arg-type]

    adapter.find_by_names = counted  # type: ignore[method-assign]
    worker.dispatcher.run_once()
    assert calls == [sorted(job_name(j.id) for j in jobs)]  # one lookup for all three
    for job in jobs:  # none was found, so each was submitted (once)
        queued = services.store.get(job.id)
        assert queued.state is JobState.QUEUED, queued.message
        assert "adopted" not in (queued.message or "")
