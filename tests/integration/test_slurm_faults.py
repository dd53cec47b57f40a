"""Slurm's own daemons go away under a running gateway: against the REAL 24.11 cluster.

Each test stops one daemon of the ``mesocentre`` cluster (Slurm 24.11) with
``deploy/devcluster.sh daemon`` while a real worker follows real jobs, then
starts it again (:func:`tests.faults.stopped`, also on failure):

* **slurmrestd** stopped while jobs are submitted and running: the new jobs
  wait and retry (their status says why), the running one is not failed, and
  once it is back every job ends as it would have, each with ONE Slurm job;
* **slurmctld** stopped (SIGTERM: Slurm saves its state) with jobs queued and
  running, and started again: the gateway follows every job to the final
  state Slurm gives it (one made to fail fails, the others succeed);
* **slurmdbd** stopped while jobs end: their usage waits (the pending read
  says why) and is recorded once slurmdbd is back -- once per job, with the
  core-hours ``sacct`` reports; reading again adds nothing.

The outages are short (seconds, until the behaviour under test has been seen:
e.g. two retries of each waiting job), not the 60 s of the issue: what the
gateway does is per attempt and the same at any length below its retry
budget (``worker.max_attempts`` with ``backoff_*``, about 4 minutes by default).
Stopping shared daemons: run these alone (``flock -x /tmp/hpcgw-cluster.lock``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.accounting import tables
from gateway.jobs.records import Job
from gateway.jobs.states import JobState
from gateway.services import Services
from gateway.workflow.batch import job_name
from tests.clusters import MESOCENTRE
from tests.conftest import worker_thread
from tests.faults import site_services, slurm_jobs_named, stopped
from tests.integration.test_workflow import ALICE, wait_for
from tests.polling import eventually

pytestmark = pytest.mark.slurm

ENDED = {JobState.SUCCESSFUL, JobState.FAILED}
FAST_USAGE = {
    "usage_delay_seconds": 0.5,
    "usage_retry_seconds": 0.5,
    "usage_retry_max_seconds": 2,
    "usage_sweep_seconds": 1,
}


def _submit(services: Services, text: str, **inputs: object) -> Job:
    return services.jobs.submit(ALICE, "echo", {"inputs": {"string_input": text, **inputs}})


def _all_final(services: Services, jobs: list[Job], timeout: float = 240) -> list[Job]:
    return [wait_for(services, j.id, ENDED, timeout) for j in jobs]


def _assert_ran_once_each(jobs: list[Job]) -> None:
    """Each gateway job has exactly one Slurm job of its name: the one it recorded."""
    for job in jobs:
        assert slurm_jobs_named(MESOCENTRE, job_name(job.id)) == [job.scheduler_job_id], job.id


def test_slurmrestd_down_submissions_wait_and_retry_and_nothing_fails(tmp_path: Path) -> None:
    with site_services(tmp_path, MESOCENTRE) as services, worker_thread(services):
        running = _submit(services, "running", pause=6)
        wait_for(services, running.id, {JobState.RUNNING}, 120)
        with stopped("slurmrestd"):
            waiting = [_submit(services, f"waiting-{i}") for i in range(2)]
            eventually(
                lambda: all(services.store.get(j.id).attempts >= 2 for j in waiting),
                120,
                "each waiting job to have retried twice",
            )
            during = [services.store.get(j.id) for j in waiting]
            assert services.store.get(running.id).state is JobState.RUNNING  # not given up
        for job in during:  # what an operator sees meanwhile
            assert job.state is JobState.STAGING and job.scheduler_job_id is None
            assert (job.message or "").startswith("Retrying: "), job.message
            assert "slurmrestd" in (job.message or ""), job.message
        done = _all_final(services, [running, *waiting])
    assert [j.state for j in done] == [JobState.SUCCESSFUL] * 3, [j.message for j in done]
    assert [j.results for j in done] == [
        {"string_output": t} for t in ("running", "waiting-0", "waiting-1")
    ]
    _assert_ran_once_each(done)


def test_slurmctld_restarted_the_gateway_follows_queued_and_running_jobs(tmp_path: Path) -> None:
    cpus = MESOCENTRE.node_cpus()
    with site_services(tmp_path, MESOCENTRE) as services, worker_thread(services):
        # one more job than the node has CPUs: some run, at least one stays queued
        jobs = [_submit(services, f"ok-{i}", pause=10) for i in range(cpus)]
        jobs.append(_submit(services, "fails", pause=10, exit_code=3))
        eventually(
            lambda: (
                all(services.store.get(j.id).scheduler_job_id for j in jobs)
                and any(services.store.get(j.id).state is JobState.RUNNING for j in jobs)
            ),
            120,
            "every job in Slurm, one running",
        )
        with stopped("slurmctld"):
            late = _submit(services, "late")
            eventually(lambda: services.store.get(late.id).attempts >= 1, 120, "a retry")
            during = [services.store.get(j.id) for j in jobs]
        assert not any(j.final for j in during), [(j.state, j.message) for j in during]
        done = _all_final(services, [*jobs, late])
    states = [j.state for j in done]
    assert states == [JobState.SUCCESSFUL] * cpus + [JobState.FAILED, JobState.SUCCESSFUL]
    assert "exit code 3" in (done[cpus].message or ""), done[cpus].message
    _assert_ran_once_each(done)


def _usage_rows(services: Services) -> list[dict[str, object]]:
    with services.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(tables.usage)).mappings().all()]


def _pending_reasons(services: Services) -> dict[str, str | None]:
    p = tables.usage_pending
    with services.engine.connect() as conn:
        return {r.job_id: r.last_error for r in conn.execute(sa.select(p)).all()}


def test_slurmdbd_down_when_jobs_end_usage_is_read_later_exactly_once(tmp_path: Path) -> None:
    with (
        site_services(tmp_path, MESOCENTRE, accounting=FAST_USAGE) as services,
        worker_thread(services),
    ):
        jobs = [_submit(services, "ok", pause=8), _submit(services, "no", pause=8, exit_code=3)]
        for job in jobs:
            wait_for(services, job.id, {JobState.RUNNING}, 120)
        with stopped("slurmdbd"):
            done = _all_final(services, jobs)  # the jobs end; their accounting cannot be read
            eventually(
                lambda: all(_pending_reasons(services).get(j.id) for j in jobs),
                120,
                "each usage read to have been deferred",
            )
            assert _usage_rows(services) == []
            reasons = _pending_reasons(services)
        eventually(lambda: len(_usage_rows(services)) == 2, 180, "both usage records")
        recorder = services.accounting.recorder("second-reader") if services.accounting else None
        assert recorder is not None
        recorder.sweep()
        recorder.settle_now()  # a second reading finds nothing left to record
        rows = _usage_rows(services)
    assert [j.state for j in done] == [JobState.SUCCESSFUL, JobState.FAILED]
    assert all(reasons[j.id] for j in jobs), reasons
    assert sorted(str(r["job_id"]) for r in rows) == sorted(j.id for j in jobs)  # one each
    for job in done:
        [row] = [r for r in rows if r["job_id"] == job.id]
        slurm_id = job.scheduler_job_id or ""
        assert row["scheduler_job_id"] == slurm_id
        assert str(row["cpu_seconds"]) == MESOCENTRE.sacct_field(slurm_id, "CPUTimeRAW")
    _assert_ran_once_each(done)
