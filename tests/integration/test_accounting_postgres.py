"""The accounting statements of the submission and finalisation paths on PostgreSQL
(the dev server): conditional usage queueing and the one-query budget lookup."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from gateway import db
from gateway.accounting import tables
from gateway.accounting.budgets import BudgetStore, Scope
from gateway.accounting.config import AccountingSettings
from gateway.accounting.periods import Period
from gateway.accounting.quotes import Pricing
from gateway.accounting.usage import UsageRecorder
from gateway.jobs.store import JobStore
from gateway.settings import SiteSettings
from gateway.sites import Sites
from tests.pg_scratch import scratch_schema_url
from tests.unit.accounting_fixtures import make_job

pytestmark = pytest.mark.postgres


@pytest.fixture
def store() -> Iterator[JobStore]:
    with scratch_schema_url() as url:
        engine = db.make_engine(url, pool_size=2)
        yield JobStore(engine)
        engine.dispose()


def test_usage_reads_are_queued_once(store: JobStore) -> None:
    settings = AccountingSettings()
    sites = Sites({"dev": SiteSettings()}, builder=lambda name, s: pytest.fail("no Slurm"))
    recorder = UsageRecorder(store.engine, store, sites, Pricing(settings, {}), settings, "w1")
    one, two, three = (make_job(store, slurm_id=str(n)) for n in (1, 2, 3))
    assert recorder.enqueue([one]) == 1
    assert recorder.enqueue([one]) == 0  # already queued
    assert recorder.enqueue([one, two, three]) == 2
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(tables.usage_pending)).mappings().all()
    assert sorted(r["scheduler_job_id"] for r in rows) == ["1", "2", "3"]
    assert all(r["attempts"] == 0 and r["next_attempt_at"] > r["first_seen"] for r in rows)


def test_budgets_of_several_subjects_in_one_lookup(store: JobStore) -> None:
    budgets = BudgetStore(store.engine)
    budgets.set(Scope.USER, "*", Period.MONTH, 10, "admin")
    budgets.set(Scope.USER, "alice", Period.MONTH, 5, "admin")
    budgets.set(Scope.USER, "*", Period.YEAR, 50, "admin")
    budgets.set(Scope.PROJECT, "gep", Period.YEAR, 100, "admin")
    found = budgets.applicable_to(
        [(Scope.USER, "alice"), (Scope.USER, "bob"), (Scope.PROJECT, "gep")]
    )
    limits = {k: sorted((b.period.value, b.limit_core_hours) for b in v) for k, v in found.items()}
    assert limits == {
        (Scope.USER, "alice"): [("month", 5.0), ("year", 50.0)],  # own month replaces '*'
        (Scope.USER, "bob"): [("month", 10.0), ("year", 50.0)],
        (Scope.PROJECT, "gep"): [("year", 100.0)],
    }
