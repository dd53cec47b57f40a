"""The job store fails just as a submission is recorded: the outcome is kept, not lost.

A stand-in for the database failing (``OperationalError`` on the one write
that records ``queued``) -- the real PostgreSQL restart is
``tests/integration/test_store_restart.py``. The Slurm job id the submission
returned is recorded at the next cycle, without submitting again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.app import build_services, build_worker
from gateway.jobs.records import Job, JobUpdate
from gateway.jobs.states import JobState
from gateway.services import Services
from tests.conftest import make_settings
from tests.integration.test_workflow import ALICE

pytestmark = pytest.mark.unit


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    key = tmp_path / "jwt.key"  # the adapter is built, never called
    key.write_bytes(b"k" * 32)
    site = {
        "adapter": "slurmrest",
        "slurmrest": {"url": "http://127.0.0.1:1", "jwt_key_file": str(key)},
    }
    svc = build_services(make_settings(tmp_path, sites={"dev": site}))
    yield svc
    svc.close()


def test_a_submission_the_store_could_not_record_is_recorded_next_cycle(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispatcher = build_worker(services).dispatcher
    job = services.jobs.submit(ALICE, "echo", {"inputs": {"string_input": "x"}})
    submitted: list[str] = []

    def submit(claimed: Job, workspace: str, extra: dict[str, Any]) -> str:
        submitted.append(claimed.id)
        return "4242"

    real = services.store.transition
    failures = [1]

    def transition(job_id: str, target: JobState, update: JobUpdate | None = None) -> bool:
        if target is JobState.QUEUED and failures:
            failures.pop()
            raise sa.exc.OperationalError("UPDATE jobs", {}, Exception("server closed"))
        return real(job_id, target, update)

    monkeypatch.setattr(dispatcher, "_submit", submit)
    monkeypatch.setattr(services.store, "transition", transition)

    dispatcher.run_once()  # submitted; recording it fails
    assert services.store.get(job.id).state is JobState.STAGING
    dispatcher.run_once()  # the store is back: recorded, not submitted again
    queued = services.store.get(job.id)
    assert queued.state is JobState.QUEUED and queued.scheduler_job_id == "4242"
    assert submitted == [job.id]
    dispatcher.close()
