"""The job store fails just as a submission is recorded: the outcome is kept, not lost.

The submission is real (sbatch through slurmrestd on the dev cluster); only the
database failure is a stand-in -- an ``OperationalError`` on the one write that
records ``queued``, a moment a real PostgreSQL restart cannot be timed to hit
(``tests/integration/test_store_restart.py`` restarts the real one). The Slurm
job id the submission returned is recorded at the next cycle, without
submitting again: the cluster's accounting holds exactly one Slurm job.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.app import build_worker
from gateway.jobs.records import JobUpdate
from gateway.jobs.states import JobState
from gateway.services import Services
from gateway.workflow.batch import job_name
from tests.clusters import MESOCENTRE
from tests.faults import site_services as on_site
from tests.faults import slurm_jobs_named
from tests.integration.test_submit_once import ALICE
from tests.polling import eventually

pytestmark = pytest.mark.slurm


@pytest.fixture
def services(cluster: str, tmp_path: Path) -> Iterator[Services]:
    with on_site(tmp_path, MESOCENTRE) as svc:
        yield svc


def test_a_submission_the_store_could_not_record_is_recorded_next_cycle(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispatcher = build_worker(services).dispatcher
    job = services.jobs.submit(ALICE, "echo", {"inputs": {"string_input": "x"}})
    real = services.store.transition
    failures = [1]

    def transition(job_id: str, target: JobState, update: JobUpdate | None = None) -> bool:
        if target is JobState.QUEUED and failures:
            failures.pop()
            raise sa.exc.OperationalError("UPDATE jobs", {}, Exception("server closed"))
        return real(job_id, target, update)

    monkeypatch.setattr(services.store, "transition", transition)
    try:
        dispatcher.run_once()  # submitted to Slurm; recording it fails
        assert not failures and services.store.get(job.id).state is JobState.STAGING
        dispatcher.run_once()  # the store is back: recorded, not submitted again
        queued = services.store.get(job.id)
        assert queued.state is JobState.QUEUED and queued.scheduler_job_id
        ids = eventually(
            lambda: slurm_jobs_named(MESOCENTRE, job_name(job.id)) or None,
            60,
            "the Slurm job in the cluster's accounting",
        )
        assert ids == [queued.scheduler_job_id]
    finally:
        dispatcher.close()
