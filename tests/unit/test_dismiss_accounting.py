"""Dismissing a finished job removes it from the APIs but not from accounting (no Slurm).

The job service, job store, usage recorder and usage report are the real
ones on a migrated SQLite database; only the site adapter is a stand-in
answering Slurm accounting reads.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.accounting import tables
from gateway.accounting.config import AccountingSettings
from gateway.accounting.quotes import Pricing
from gateway.accounting.reports import ReportQuery, run_report
from gateway.accounting.usage import UsageRecorder
from gateway.errors import NoSuchJob
from gateway.identity.auth import Principal
from gateway.jobs.service import JobService
from gateway.jobs.states import JobState
from gateway.jobs.store import JobStore
from gateway.settings import Settings, SiteSettings
from gateway.sites import Sites
from processes.registry import ProcessRegistry
from tests.unit.accounting_fixtures import FakeAdapter, make_job, migrated_engine, usage

pytestmark = pytest.mark.unit

ALICE = Principal(sub="sub-alice", username="alice", hpc_login="alice")


@pytest.fixture
def parts(tmp_path: Path) -> tuple[JobStore, JobService, UsageRecorder, FakeAdapter]:
    store = JobStore(migrated_engine(tmp_path))
    adapter = FakeAdapter()
    sites = Sites({"dev": SiteSettings()}, builder=lambda name, s: adapter)
    jobs = JobService(store, ProcessRegistry.builtin(Settings().processes), sites, "dev")
    settings = AccountingSettings(usage_delay_seconds=0, prices={"*": {"*": 0.5}})
    pricing = Pricing(settings, {"dev": SiteSettings()})
    recorder = UsageRecorder(
        store.engine, store, sites, pricing, settings, "w1", clock=lambda: datetime.now(UTC)
    )
    return store, jobs, recorder, adapter


def _usage_rows(store: JobStore) -> list[dict[str, object]]:
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(tables.usage)).mappings().all()]


def test_a_recorded_usage_survives_the_removal(parts) -> None:
    store, jobs, recorder, adapter = parts
    job = make_job(store, state=JobState.SUCCESSFUL, slurm_id="77")
    adapter.records["77"] = usage("77", cpus=4, elapsed=900)
    recorder.enqueue([job])
    assert recorder.settle_now() == 1
    before = _usage_rows(store)

    dismissed = jobs.dismiss(ALICE, job.id)

    assert dismissed.state is JobState.REMOVED and dismissed.state.ogc == "dismissed"
    assert dismissed.finished == job.finished  # budget windows key on it
    with pytest.raises(NoSuchJob):
        jobs.get(ALICE, job.id)
    assert _usage_rows(store) == before
    report = run_report(store.engine, ReportQuery(users=("alice",)))
    assert report.total.jobs == 1 and report.total.core_hours == pytest.approx(1.0)


@pytest.mark.parametrize("state", [JobState.SUCCESSFUL, JobState.FAILED, JobState.DISMISSED])
def test_a_job_removed_before_its_usage_was_read_is_still_recorded(parts, state) -> None:
    store, jobs, recorder, adapter = parts
    job = make_job(store, state=state, slurm_id="78")
    jobs.dismiss(ALICE, job.id)
    assert store.get(job.id).state is JobState.REMOVED
    adapter.records["78"] = usage("78", cpus=2, elapsed=1800)
    assert recorder.sweep() == 1  # removed jobs are final: the sweep still finds them
    assert recorder.settle_now() == 1
    [row] = _usage_rows(store)
    assert (row["job_id"], row["cpu_seconds"]) == (job.id, 3600)


def test_an_active_job_is_dismissed_not_removed(parts) -> None:
    store, jobs, _recorder, _adapter = parts
    job = make_job(store, state=JobState.STAGING, slurm_id=None)
    assert jobs.dismiss(ALICE, job.id).state is JobState.DISMISSED
    assert jobs.get(ALICE, job.id).state is JobState.DISMISSED  # still visible
    assert [j.id for j in jobs.list(ALICE).jobs] == [job.id]
    assert jobs.dismiss(ALICE, job.id).state is JobState.REMOVED  # the second time
    assert jobs.list(ALICE).jobs == []
