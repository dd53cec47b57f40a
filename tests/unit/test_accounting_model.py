"""Accounting logic without Slurm: periods, prices, quotes, budgets, reports, charts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.accounting import charts, tables
from gateway.accounting.budgets import BudgetChecker, BudgetStore, Scope
from gateway.accounting.config import AccountingSettings, ProcessCostModel
from gateway.accounting.periods import Period, parse_period, window
from gateway.accounting.quotes import Estimator, Pricing, input_bytes, quoted_core_hours
from gateway.accounting.reports import (
    ReportError,
    ReportQuery,
    parse_group_by,
    parse_time,
    render,
    run_report,
)
from gateway.errors import QuotaExceeded
from gateway.jobs.states import JobState
from gateway.jobs.store import JobStore
from gateway.settings import SiteSettings
from processes.registry import ProcessRegistry
from tests.unit.accounting_fixtures import T0, make_job, migrated_engine

pytestmark = pytest.mark.unit


# -- periods --------------------------------------------------------------------


def test_periods_are_utc_calendar_windows() -> None:
    at = datetime(2025, 2, 14, 23, 30, tzinfo=UTC)
    month = window(Period.MONTH, at)
    assert (month.start, month.end, month.label) == (
        datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 3, 1, tzinfo=UTC), "2025-02"
    )  # fmt: skip
    assert window(Period.MONTH, datetime(2025, 12, 5, tzinfo=UTC)).end == datetime(
        2026, 1, 1, tzinfo=UTC
    )
    week = window(Period.WEEK, at)
    assert week.start == datetime(2025, 2, 10, tzinfo=UTC) and week.label == "2025-W07"
    quarter = window(Period.QUARTER, at)
    assert quarter.label == "2025-Q1" and quarter.end == datetime(2025, 4, 1, tzinfo=UTC)
    assert window(Period.YEAR, at).label == "2025"
    assert window(Period.DAY, at).end == datetime(2025, 2, 15, tzinfo=UTC)
    assert window(Period.TOTAL, at).end is None
    assert parse_period("Monthly") is Period.MONTH
    with pytest.raises(ValueError, match="unknown budget period"):
        parse_period("fortnight")


# -- prices and quotes ----------------------------------------------------------


def _pricing(**overrides: object) -> Pricing:
    settings = AccountingSettings(**overrides)  # type: ignore[arg-type]
    return Pricing(settings, {"dev": SiteSettings(default_partition="debug")})


def test_price_lookup_falls_back_from_partition_to_site_to_default() -> None:
    pricing = _pricing(
        prices={"dev": {"long": 0.2, "*": 0.1}, "*": {"gpu": 1.5}},
        default_price_per_core_hour=0.05,
    )
    assert pricing.price("dev", "long") == 0.2
    assert pricing.price("dev", "debug") == 0.1
    assert pricing.price("other", "gpu") == 1.5
    assert pricing.price("other", "debug") == 0.05


def test_billing_units_follow_tres_weights() -> None:
    assert _pricing().billing_units(4, 8192) == 4.0
    summed = _pricing(billing_weights={"cpu": 1.0, "mem": 0.25})
    assert summed.billing_units(4, 8192) == pytest.approx(4 + 2)
    maxed = _pricing(billing_weights={"cpu": 1.0, "mem": 1.0}, billing_mode="max")
    assert maxed.billing_units(4, 8192) == 8.0


@pytest.fixture
def estimator(tmp_path: Path) -> Estimator:
    settings = AccountingSettings(
        prices={"dev": {"debug": 0.1}},
        history_min_runs=3,
        cost_models={"ndvi": ProcessCostModel(base_seconds=10, seconds_per_input_mb=60)},
    )
    engine = migrated_engine(tmp_path)
    return Estimator(engine, settings, Pricing(settings, {"dev": SiteSettings()}))


def _record(engine: sa.Engine, job_id: str, elapsed: int, state: str = "COMPLETED") -> None:
    with engine.begin() as conn:
        conn.execute(
            tables.usage.insert().values(
                job_id=job_id, site="dev", scheduler_job_id="1", process_id="echo",
                owner_sub="s", username="alice", hpc_login="alice", project="gep",
                state=state, alloc_cpus=1, elapsed_seconds=elapsed, cpu_seconds=elapsed,
                core_hours=elapsed / 3600, end_time=T0 + timedelta(seconds=elapsed), cost=0.0,
                currency="EUR", recorded_at=T0, quoted_core_hours=0.5,
            )
        )  # fmt: skip


def test_quote_is_the_walltime_without_history_then_the_median(estimator: Estimator) -> None:
    echo = ProcessRegistry.builtin().get("echo")
    first = estimator.quote(echo, {"string_input": "x"}, "dev", "gep")
    assert first.basis["method"] == "walltime"
    assert first.estimated_seconds == 300 and first.core_hours == pytest.approx(300 / 3600, 1e-5)
    assert first.partition == "default" and first.price_per_core_hour == 0.05
    store = JobStore(estimator.engine)
    for elapsed in (10, 20, 40):
        _record(estimator.engine, make_job(store).id, elapsed)
    _record(estimator.engine, make_job(store, state=JobState.FAILED).id, 999, "FAILED")
    second = estimator.quote(echo, {}, "dev", "gep")
    assert second.basis == {
        "method": "history", "runs": 3, "median_elapsed": 20, "walltime_limit_seconds": 300
    }  # fmt: skip
    assert second.estimated_seconds == 20
    assert second.cost == pytest.approx(20 / 3600 * 0.05, abs=1e-6)
    assert second.max_core_hours == pytest.approx(300 / 3600, 1e-5)
    for _ in range(3):
        _record(estimator.engine, make_job(store).id, 100_000)
    capped = estimator.quote(echo, {}, "dev", "gep")
    assert capped.estimated_seconds == 300  # median ~50000 s, bounded by the walltime


def test_quote_scales_with_known_input_sizes(estimator: Estimator) -> None:
    ndvi = ProcessRegistry.builtin().get("ndvi")
    by_ref = estimator.quote(ndvi, {"image": {"href": "https://x.org/a.tif"}}, "dev", "gep")
    assert by_ref.basis["method"] == "walltime"
    assert input_bytes({"a": "x" * 2_000_000, "b": {"href": "h"}}, []) == 2_000_000
    assert input_bytes({"a": "x" * 10, "b": [1, 22]}, ["b"]) == 3  # each of several values
    assert input_bytes({"b": {"href": "h"}}, []) is None
    sized = estimator.quote(ndvi, {"image": "x" * 500_000, "red_band": 3}, "dev", "gep")
    assert sized.basis["method"] == "input-size"
    assert sized.estimated_seconds == 10 + 30 + 1  # 500 kB + "3" -> 30.00006 s, rounded up


def test_quoted_core_hours_of_stored_quotes() -> None:
    assert quoted_core_hours(None) == 0.0
    assert quoted_core_hours({"core_hours": 0.5, "max_core_hours": 2}) == 0.5
    assert quoted_core_hours({"core_hours": 0.5, "max_core_hours": 2}, "limit") == 2


# -- budgets --------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(migrated_engine(tmp_path))


def _usage_row(
    store: JobStore,
    login: str,
    seconds: int,
    end: datetime,
    project: str = "gep",
    site: str = "dev",
):
    job = make_job(store, login, site=site)
    with store.engine.begin() as conn:
        conn.execute(
            tables.usage.insert().values(
                job_id=job.id, site=site, scheduler_job_id="7", process_id="echo",
                owner_sub=f"sub-{login}", username=login, hpc_login=login, project=project,
                state="COMPLETED", alloc_cpus=1, elapsed_seconds=seconds, cpu_seconds=seconds,
                core_hours=seconds / 3600, end_time=end, cost=seconds / 3600 * 0.1,
                currency="EUR", recorded_at=end, quoted_core_hours=0.01,
            )
        )  # fmt: skip
    return job


def test_budget_store_set_replace_find_delete(store: JobStore) -> None:
    budgets = BudgetStore(store.engine)
    budgets.set(Scope.USER, "alice", Period.MONTH, 10, actor="test")
    budgets.set(Scope.USER, "alice", Period.MONTH, 12, actor="test2", note="raised")
    budgets.set(Scope.USER, "*", Period.MONTH, 5, actor="test")
    budgets.set(Scope.USER, "*", Period.YEAR, 50, actor="test")
    found = budgets.find(Scope.USER, "alice")
    assert [(b.limit_core_hours, b.updated_by, b.note) for b in found] == [(12, "test2", "raised")]
    applicable = budgets.applicable(Scope.USER, "alice")
    assert sorted((b.name, b.period.value) for b in applicable) == [
        ("*", "year"),
        ("alice", "month"),
    ]
    assert {b.name for b in budgets.applicable(Scope.USER, "bob")} == {"*"}
    assert budgets.delete(Scope.USER, "alice", Period.MONTH)
    assert not budgets.delete(Scope.USER, "alice", Period.MONTH)
    with pytest.raises(ValueError):
        budgets.set(Scope.USER, "alice", Period.MONTH, -1, actor="x")


def test_budget_check_counts_used_reserved_and_quote(store: JobStore) -> None:
    now = datetime(2025, 6, 20, tzinfo=UTC)
    _usage_row(store, "alice", 3600, datetime(2025, 6, 5, tzinfo=UTC))  # 1 core-hour in June
    _usage_row(store, "alice", 7200, datetime(2025, 5, 31, 23, tzinfo=UTC))  # May: not counted
    _usage_row(store, "bob", 1800, datetime(2025, 6, 6, tzinfo=UTC), project="gep")
    quote = {"core_hours": 0.25, "max_core_hours": 1.0, "project": "gep"}
    make_job(store, "alice", state=JobState.RUNNING, quote=quote)  # active: reserved
    make_job(store, "alice", state=JobState.QUEUED, quote=quote)  # active: reserved
    make_job(store, "alice", state=JobState.FAILED, slurm_id=None, quote=quote)  # never ran
    budgets = BudgetStore(store.engine)
    budgets.set(Scope.USER, "alice", Period.MONTH, 2.0, actor="t")
    checker = BudgetChecker(store.engine, budgets)
    [status] = checker.statuses([(Scope.USER, "alice")], 0.4, "gep", now)
    assert (status.used, status.reserved, status.quote) == (1.0, 0.5, 0.4)
    assert not status.exceeded and status.remaining == pytest.approx(0.5)
    with pytest.raises(QuotaExceeded) as refused:
        checker.check([(Scope.USER, "alice")], 0.6, "gep", now)
    detail = refused.value.detail
    assert "monthly budget of user 'alice' for 2025-06" in detail
    assert "used 1.0000 core-hours + 0.5000 reserved" in detail
    assert "0.6000 quoted for this job" in detail and "limit 2.0000" in detail
    assert refused.value.status == 403
    # the project budget sees every user's usage and reservations in that account
    budgets.set(Scope.PROJECT, "gep", Period.MONTH, 2.0, actor="t")
    [project] = checker.statuses([(Scope.PROJECT, "gep")], 0.0, "gep", now)
    assert (project.used, project.reserved) == (1.5, 0.5)
    # the worst-case basis reserves the walltime limit
    worst = BudgetChecker(store.engine, budgets, basis="limit")
    [limit_status] = worst.statuses([(Scope.USER, "alice")], 0.0, "gep", now)
    assert limit_status.reserved == 2.0


def test_a_site_budget_counts_only_that_sites_usage_and_jobs(store: JobStore) -> None:
    """A per-site budget caps one site; the all-sites budget still counts everything."""
    now = datetime(2025, 6, 20, tzinfo=UTC)
    june = datetime(2025, 6, 5, tzinfo=UTC)
    _usage_row(store, "alice", 3600, june, site="mesocentre")  # 1 core-hour there
    _usage_row(store, "alice", 7200, june, site="hpcgw")  # 2 core-hours here
    quote = {"core_hours": 0.25, "max_core_hours": 1.0, "project": "gep"}
    make_job(store, "alice", state=JobState.RUNNING, quote=quote, site="mesocentre")
    make_job(store, "alice", state=JobState.RUNNING, quote=quote, site="hpcgw")
    budgets = BudgetStore(store.engine)
    budgets.set(Scope.USER, "alice", Period.MONTH, 1.5, actor="t", site="mesocentre")
    budgets.set(Scope.USER, "alice", Period.MONTH, 10.0, actor="t")  # every site
    budgets.set(Scope.USER, "*", Period.MONTH, 0.5, actor="t", site="hpcgw")  # default there
    checker = BudgetChecker(store.engine, budgets)
    at_meso = checker.statuses([(Scope.USER, "alice")], 0.3, "gep", now, site="mesocentre")
    standings = {s.budget.site: (s.used, s.reserved) for s in at_meso}
    assert standings == {"mesocentre": (1.0, 0.25), "*": (3.0, 0.5)}
    with pytest.raises(QuotaExceeded) as refused:
        checker.check([(Scope.USER, "alice")], 0.3, "gep", now, site="mesocentre")
    assert "monthly budget of user 'alice' at site 'mesocentre'" in refused.value.detail
    # at hpcgw the mesocentre cap does not apply, but hpcgw's default budget does
    at_hpcgw = checker.statuses([(Scope.USER, "alice")], 0.0, "gep", now, site="hpcgw")
    assert {(s.budget.name, s.budget.site) for s in at_hpcgw} == {("*", "hpcgw"), ("alice", "*")}
    [default] = [s for s in at_hpcgw if s.budget.site == "hpcgw"]
    assert (default.used, default.reserved) == (2.0, 0.25) and default.exceeded
    # alice's own budget at hpcgw overrides that default there, and only there
    budgets.set(Scope.USER, "alice", Period.MONTH, 4.0, actor="t", site="hpcgw")
    checker.check([(Scope.USER, "alice")], 0.5, "gep", now, site="hpcgw")
    assert budgets.delete(Scope.USER, "alice", Period.MONTH, site="hpcgw")
    assert not budgets.delete(Scope.USER, "alice", Period.MONTH, site="hpcgw")
    assert [b.site for b in budgets.find(Scope.USER, "alice")] == ["*", "mesocentre"]
    [listed] = budgets.find(Scope.USER, "alice", "mesocentre")
    assert checker.standing(listed, "gep", now).to_dict()["used_core_hours"] == 1.0


def test_finished_job_without_usage_record_stays_reserved(store: JobStore) -> None:
    quote = {"core_hours": 0.3, "project": "gep"}
    done = make_job(store, "alice", state=JobState.SUCCESSFUL, quote=quote)
    budgets = BudgetStore(store.engine)
    budgets.set(Scope.USER, "alice", Period.TOTAL, 1.0, actor="t")
    checker = BudgetChecker(store.engine, budgets)
    [status] = checker.statuses([(Scope.USER, "alice")], 0.0, "gep")
    assert status.reserved == pytest.approx(0.3)
    _usage_row_for(store, done.id)
    [after] = checker.statuses([(Scope.USER, "alice")], 0.0, "gep")
    assert after.reserved == 0 and after.used == pytest.approx(0.1)


def _usage_row_for(store: JobStore, job_id: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            tables.usage.insert().values(
                job_id=job_id, site="dev", scheduler_job_id="9", process_id="echo",
                owner_sub="sub-alice", username="alice", hpc_login="alice", project="gep",
                state="COMPLETED", alloc_cpus=1, elapsed_seconds=360, cpu_seconds=360,
                core_hours=0.1, end_time=datetime.now(UTC), cost=0.0, currency="EUR",
                recorded_at=datetime.now(UTC),
            )
        )  # fmt: skip


# -- reports --------------------------------------------------------------------


def test_report_groups_filters_and_formats(store: JobStore) -> None:
    _usage_row(store, "alice", 3600, datetime(2025, 6, 5, 10, tzinfo=UTC))
    _usage_row(store, "alice", 1800, datetime(2025, 6, 5, 11, tzinfo=UTC))
    _usage_row(store, "bob", 900, datetime(2025, 6, 6, tzinfo=UTC), project="other")
    _usage_row(store, "bob", 7, datetime(2025, 7, 1, tzinfo=UTC))
    june = ReportQuery(
        start=parse_time("2025-06-01"), end=parse_time("2025-06-30", end=True),
        group_by=("user",),
    )  # fmt: skip
    report = run_report(store.engine, june, "EUR")
    assert [(r.keys["user"], r.jobs, r.cpu_seconds) for r in report.rows] == [
        ("alice", 2, 5400), ("bob", 1, 900)
    ]  # fmt: skip
    assert report.total.cpu_seconds == 6300 and report.total.core_hours == 1.75
    by_day = run_report(store.engine, ReportQuery(group_by=("day", "project")))
    assert [(r.keys["day"], r.keys["project"], r.cpu_seconds) for r in by_day.rows] == [
        ("2025-06-05", "gep", 5400), ("2025-06-06", "other", 900), ("2025-07-01", "gep", 7)
    ]  # fmt: skip
    only_bob = run_report(store.engine, ReportQuery(group_by=("month",), users=("bob",)))
    assert [(r.keys["month"], r.cpu_seconds) for r in only_bob.rows] == [
        ("2025-06", 900), ("2025-07", 7)
    ]  # fmt: skip
    jobs = run_report(store.engine, ReportQuery(group_by=("job",), projects=("other",)))
    assert [r.keys["user"] for r in jobs.rows] == ["bob"]
    csv_text = render(report, "csv")
    assert csv_text.splitlines()[0].startswith("user,jobs,cpu_seconds,core_hours")
    assert "alice,2,5400,1.5," in csv_text
    table = render(report, "table")
    assert "TOTAL" in table and "6300" in table and "(cost in EUR)" in table
    assert '"cpu_seconds": 6300' in render(report, "json")
    assert run_report(store.engine, ReportQuery()).total.jobs == 4


def test_report_parameters_are_checked() -> None:
    assert parse_group_by("user, process") == ("user", "process")
    assert parse_group_by(["user", "user,site"]) == ("user", "site")
    with pytest.raises(ReportError, match="cannot group by 'owner'"):
        parse_group_by("owner")
    assert parse_time("2025-06-30", end=True) == datetime(2025, 7, 1, tzinfo=UTC)
    assert parse_time("2025-06-30T10:00:00Z") == datetime(2025, 6, 30, 10, tzinfo=UTC)
    with pytest.raises(ReportError):
        parse_time("yesterday")


# -- charts ---------------------------------------------------------------------


def test_charts_are_svg_with_exact_data_attributes() -> None:
    svg = charts.bar_chart("c", [("alice", 0.25), ("b<o>b", 1.0)])
    assert svg.startswith('<svg id="c"') and svg.endswith("</svg>")
    assert svg.index('data-label="b&lt;o&gt;b"') < svg.index('data-label="alice"')  # largest first
    assert 'data-value="0.25"' in svg
    columns = charts.column_chart("t", [("2025-06-01", 0.0), ("2025-06-02", 2.0)])
    assert columns.count('class="bar"') == 2
    scatter = charts.scatter_chart("q", [("echo 1", 0.08, 0.001)])
    assert 'data-quoted="0.08"' in scatter and 'data-actual="0.001"' in scatter
    assert "no usage" in charts.bar_chart("e", [])
    assert charts._nice_max(0.0047) == 0.005 and charts._nice_max(7) == 10


def test_quote_of_a_tiled_process_charges_every_array_task(estimator: Estimator) -> None:
    correlation = ProcessRegistry.builtin().get("optical-correlation")
    one = estimator.quote(correlation, {"tiles": 1}, "dev", "gep")
    four = estimator.quote(correlation, {"tiles": 4}, "dev", "gep")
    assert "array_tasks" not in one.basis and four.basis["array_tasks"] == 4
    assert four.core_hours == pytest.approx(4 * one.core_hours, abs=1e-5)  # both rounded
    assert four.max_cost == pytest.approx(4 * one.max_cost, abs=1e-5)
