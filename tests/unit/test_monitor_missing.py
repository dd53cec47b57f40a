"""A job the scheduler no longer knows: noted first, failed after the grace period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.jobs.extra import missing_since, missing_since_key
from gateway.jobs.records import JobUpdate
from gateway.jobs.states import JobState
from gateway.jobs.store import JobStore
from gateway.settings import SiteSettings
from gateway.sites import Sites
from gateway.workflow.monitor import LOST_GRACE, Monitor
from tests.unit.accounting_fixtures import make_job, migrated_engine

pytestmark = pytest.mark.unit


class _Forgetful:
    """A scheduler that knows no job at all."""

    site = "dev"

    def statuses(self, ids: list[str]) -> dict[str, object]:
        return {}


def test_unknown_job_is_noted_then_failed_after_the_grace(tmp_path: Path) -> None:
    store = JobStore(migrated_engine(tmp_path))
    sites = Sites({"dev": SiteSettings()}, builder=lambda name, s: _Forgetful())  # type: ignore[arg-type,return-value]
    monitor = Monitor(store=store, sites=sites, worker_id="w1", lease_seconds=30)
    job = make_job(store, state=JobState.QUEUED, slurm_id="77")

    assert monitor.check_site("dev") == 1
    noted = store.get(job.id)
    assert noted.state is JobState.QUEUED
    since = missing_since(noted.extra)
    assert since is not None

    monitor.check_site("dev")  # still within the grace: nothing more
    assert store.get(job.id).state is JobState.QUEUED

    long_ago = datetime.now(UTC) - LOST_GRACE - timedelta(seconds=1)
    store.update(job.id, JobUpdate(extra_keys=missing_since_key(long_ago)))
    monitor.check_site("dev")
    failed = store.get(job.id)
    assert failed.state is JobState.FAILED
    assert "unknown to the scheduler" in (failed.message or "")
