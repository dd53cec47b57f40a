"""Accounting against the real dev cluster and slurmdbd.

A few echo jobs run as alice and bob through the real worker (one fails, one is
dismissed while running). Then: every job has its quote, and a usage record
whose CPU-seconds equal ``sacct``'s ``CPUTimeRAW``; the report, the
``/accounting/usage`` endpoint, ``/metrics`` and the dashboard (headless
Chromium) agree with ``sacct`` to the second; a quote follows the history; an
over-budget submission is refused with 403, no job row and nothing in Slurm.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from gateway.accounting import tables
from gateway.accounting.reports import ReportQuery, run_report
from gateway.app import build_services, build_worker, create_app
from gateway.jobs.records import Job
from gateway.jobs.states import JobState
from gateway.services import Services
from gateway.workflow.worker import Worker
from tests.accounting_support import (
    PRINCIPALS,
    HeaderAuth,
    as_user,
    chromium_problem,
    headless_chromium,
    live_server,
    metric_samples,
    metric_sum,
)
from tests.conftest import make_settings, sacct_field
from tests.polling import eventually

pytestmark = pytest.mark.slurm

#: The scraper's token: per-user metric labels are served only with it (or to an admin).
SCRAPE_TOKEN = "scrape-secret"
SCRAPER = {"Authorization": f"Bearer {SCRAPE_TOKEN}"}

ACCOUNTING = {
    "usage_delay_seconds": 0.5,
    "usage_retry_seconds": 0.5,
    "usage_retry_max_seconds": 2,
    "usage_sweep_seconds": 1,
    "prices": {"*": {"*": 0.10}},
}


@dataclass
class Scenario:
    services: Services
    app: Flask
    jobs: list[Job]
    worker: Worker
    stop: threading.Event


def _wait(predicate, timeout: float, what: str) -> None:
    eventually(predicate, timeout, what, every=0.3)


def _usage_rows(services: Services) -> dict[str, dict]:
    with services.engine.connect() as conn:
        rows = conn.execute(sa.select(tables.usage)).mappings().all()
    return {r["job_id"]: dict(r) for r in rows}


def _sacct_seconds(job: Job) -> int:
    return int(sacct_field(job.scheduler_job_id or "", "CPUTimeRAW"))


@pytest.fixture(scope="module")
def scenario(cluster: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    tmp = tmp_path_factory.mktemp("accounting")
    token = tmp / "scrape.token"
    token.write_text(SCRAPE_TOKEN, encoding="utf-8")
    metrics = {"bearer_token_file": str(token)}
    settings = make_settings(tmp, accounting={**ACCOUNTING, "metrics": metrics})
    services = build_services(settings)
    app = create_app(settings, services, authenticator=HeaderAuth())
    worker = build_worker(services)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,), daemon=True)
    thread.start()

    alice, bob = PRINCIPALS["alice"], PRINCIPALS["bob"]
    plan = [
        (alice, {"string_input": "a1", "pause": 2}),
        (alice, {"string_input": "a2", "pause": 3}),
        (alice, {"string_input": "a-fail", "exit_code": 3}),
        (bob, {"string_input": "b1", "pause": 2}),
        (bob, {"string_input": "b2", "pause": 1}),
    ]
    jobs = [services.jobs.submit(p, "echo", {"inputs": inputs}) for p, inputs in plan]
    dismissed = services.jobs.submit(alice, "echo", {"inputs": {"string_input": "d", "pause": 60}})
    _wait(lambda: services.store.get(dismissed.id).state is JobState.RUNNING, 60, "a running job")
    time.sleep(2)
    services.jobs.dismiss(alice, dismissed.id)
    jobs.append(dismissed)
    _wait(lambda: all(services.store.get(j.id).final for j in jobs), 180, "jobs to finish")
    _wait(lambda: len(_usage_rows(services)) == len(jobs), 120, "usage records of every job")
    final = [services.store.get(j.id) for j in jobs]
    yield Scenario(services, app, final, worker, stop)
    stop.set()
    thread.join(timeout=10)
    services.close()


def test_jobs_ran_as_planned(scenario: Scenario) -> None:
    states = [j.state for j in scenario.jobs]
    assert states == [JobState.SUCCESSFUL] * 2 + [JobState.FAILED] + [JobState.SUCCESSFUL] * 2 + [
        JobState.DISMISSED
    ], [(j.state, j.message) for j in scenario.jobs]


def test_every_job_recorded_its_quote(scenario: Scenario) -> None:
    for job in scenario.jobs:
        quote = job.quote
        assert quote is not None and quote.process_id == "echo"
        assert quote.core_hours > 0 and quote.currency == "EUR"
        assert quote.basis["method"] in ("walltime", "history")
        assert quote.project == "gep"
        assert quote.price_per_core_hour == pytest.approx(0.10)


def test_core_hours_equal_sacct_cputimeraw(scenario: Scenario) -> None:
    rows = _usage_rows(scenario.services)
    for job in scenario.jobs:
        row = rows[job.id]
        raw = _sacct_seconds(job)
        assert row["cpu_seconds"] == raw, (job.id, job.scheduler_job_id)
        assert row["core_hours"] == raw / 3600
        assert row["scheduler_job_id"] == job.scheduler_job_id
        assert row["hpc_login"] == sacct_field(job.scheduler_job_id or "", "User")
        assert row["project"] == sacct_field(job.scheduler_job_id or "", "Account") == "gep"
        assert row["alloc_cpus"] == int(sacct_field(job.scheduler_job_id or "", "AllocCPUS"))
        assert row["elapsed_seconds"] == int(sacct_field(job.scheduler_job_id or "", "ElapsedRaw"))
        assert row["process_id"] == "echo" and row["site"] == "dev"
        assert row["quoted_core_hours"] == pytest.approx(job.quote.core_hours)
        assert row["cost"] == pytest.approx(raw / 3600 * 0.10, abs=1e-6)
    states = {j.id: rows[j.id]["state"] for j in scenario.jobs}
    assert states[scenario.jobs[2].id] == "FAILED"
    assert states[scenario.jobs[5].id] == "CANCELLED"
    assert rows[scenario.jobs[1].id]["elapsed_seconds"] >= 3


def _sacct_by_user(scenario: Scenario) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for job in scenario.jobs:
        totals[job.owner.hpc_login] += _sacct_seconds(job)
    return dict(totals)


def test_report_agrees_with_sacct(scenario: Scenario) -> None:
    expected = _sacct_by_user(scenario)
    report = run_report(scenario.services.engine, ReportQuery(group_by=("user", "process")))
    got = {r.keys["user"]: r.cpu_seconds for r in report.rows}
    assert got == expected
    assert report.total.cpu_seconds == sum(expected.values())
    per_job = run_report(scenario.services.engine, ReportQuery(group_by=("job",)))
    assert {r.keys["slurm_job"]: r.cpu_seconds for r in per_job.rows} == {
        j.scheduler_job_id: _sacct_seconds(j) for j in scenario.jobs
    }


def test_cli_report_agrees_with_sacct(scenario: Scenario, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from gateway.cli import app as cli

    url = scenario.services.settings.database.url
    env = {"HPCGW_DATABASE__URL": url, "HPCGW_CONFIG": ""}
    result = CliRunner().invoke(
        cli, ["accounting", "report", "--group-by", "user", "--format", "json"], env=env
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert {r["user"]: r["cpu_seconds"] for r in doc["rows"]} == _sacct_by_user(scenario)
    table = CliRunner().invoke(cli, ["accounting", "report", "--group-by", "user,process"], env=env)
    assert table.exit_code == 0 and "TOTAL" in table.output and "alice" in table.output


def test_usage_endpoint_agrees_with_sacct_and_is_scoped(scenario: Scenario) -> None:
    client = scenario.app.test_client()
    expected = _sacct_by_user(scenario)
    admin = client.get("/accounting/usage?groupBy=user", headers=as_user("admin"))
    assert admin.status_code == 200
    assert {r["user"]: r["cpu_seconds"] for r in admin.get_json()["rows"]} == expected
    own = client.get("/accounting/usage?groupBy=user,process", headers=as_user("bob"))
    assert [(r["user"], r["cpu_seconds"]) for r in own.get_json()["rows"]] == [
        ("bob", expected["bob"])
    ]
    other = client.get("/accounting/usage?user=alice", headers=as_user("bob"))
    assert other.status_code == 403
    csv = client.get("/accounting/usage?groupBy=job&f=csv", headers=as_user("alice"))
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    lines = csv.get_data(as_text=True).strip().splitlines()
    assert len(lines) == 1 + sum(1 for j in scenario.jobs if j.owner.hpc_login == "alice")


def test_metrics_agree_with_sacct(scenario: Scenario) -> None:
    client = scenario.app.test_client()
    response = client.get("/metrics", headers=SCRAPER)  # the scraper: per-user labels
    assert response.status_code == 200
    samples = metric_samples(response.get_data(as_text=True))
    for user, seconds in _sacct_by_user(scenario).items():
        assert metric_sum(samples, "hpcgw_cpu_seconds_total", user=user) == seconds
        assert metric_sum(samples, "hpcgw_core_hours_total", user=user) == pytest.approx(
            seconds / 3600, abs=1e-9
        )
    assert metric_sum(samples, "hpcgw_jobs", process="echo", state="successful") == 4
    assert metric_sum(samples, "hpcgw_jobs", process="echo", state="failed") == 1
    assert metric_sum(samples, "hpcgw_jobs", process="echo", state="dismissed") == 1
    assert metric_sum(samples, "hpcgw_job_run_seconds_count", process="echo") == 6
    assert metric_sum(samples, "hpcgw_job_queue_wait_seconds_count", process="echo") == 6
    assert metric_sum(samples, "hpcgw_adapter_call_seconds_count", method="submit") >= 6
    assert metric_sum(samples, "hpcgw_adapter_call_seconds_count", method="usages") >= 1
    assert metric_sum(samples, "hpcgw_usage_pending_jobs") == 0


def test_quote_uses_history_of_successful_runs(scenario: Scenario) -> None:
    rows = _usage_rows(scenario.services)
    elapsed = sorted(
        rows[j.id]["elapsed_seconds"] for j in scenario.jobs if j.state is JobState.SUCCESSFUL
    )
    client = scenario.app.test_client()
    response = client.post(
        "/processes/echo/quotations",
        json={"inputs": {"string_input": "q"}},
        headers=as_user("alice"),
    )
    assert response.status_code == 200, response.get_json()
    quote = response.get_json()
    assert quote["basis"]["method"] == "history"
    assert quote["basis"]["runs"] == 4
    median = (elapsed[1] + elapsed[2]) / 2
    assert quote["basis"]["median_elapsed"] == median
    assert quote["estimated_seconds"] == max(1, int(-(-median // 1)))
    assert quote["core_hours"] == pytest.approx(quote["estimated_seconds"] / 3600, abs=1e-6)
    bad = client.post(
        "/processes/echo/quotations", json={"inputs": {"pause": -1}}, headers=as_user("alice")
    )
    assert bad.status_code == 400


def test_metrics_move_as_a_job_runs(scenario: Scenario) -> None:
    client = scenario.app.test_client()
    before = metric_samples(client.get("/metrics", headers=SCRAPER).get_data(as_text=True))
    job = scenario.services.jobs.submit(
        PRINCIPALS["bob"], "echo", {"inputs": {"string_input": "m", "pause": 1}}
    )
    _wait(lambda: job.id in _usage_rows(scenario.services), 120, "the new job's usage")
    after = metric_samples(client.get("/metrics", headers=SCRAPER).get_data(as_text=True))
    done = scenario.services.store.get(job.id)
    raw = _sacct_seconds(done)
    for name in ("hpcgw_jobs",):
        assert (
            metric_sum(after, name, state="successful")
            == metric_sum(before, name, state="successful") + 1
        )
    assert (
        metric_sum(after, "hpcgw_cpu_seconds_total", user="bob")
        == metric_sum(before, "hpcgw_cpu_seconds_total", user="bob") + raw
    )
    assert (
        metric_sum(after, "hpcgw_accounted_jobs_total")
        == metric_sum(before, "hpcgw_accounted_jobs_total") + 1
    )
    assert metric_sum(after, "hpcgw_adapter_call_seconds_count", method="submit") > metric_sum(
        before, "hpcgw_adapter_call_seconds_count", method="submit"
    )
    scenario.jobs.append(done)


def _count_jobs(services: Services) -> int:
    return services.store.count()


def _slurm_jobs_of(login: str) -> dict[str, str]:
    """Slurm job id -> name of ``login``'s jobs in squeue (other suites may run some too)."""
    out = subprocess.run(
        ["squeue", "-h", "-u", login, "-o", "%i %j"], capture_output=True, text=True, check=True
    )
    return dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)


def _submits(app: Flask) -> float:
    samples = metric_samples(
        app.test_client().get("/metrics", headers=SCRAPER).get_data(as_text=True)
    )
    return metric_sum(samples, "hpcgw_adapter_call_seconds_count", method="submit")


def _assert_nothing_reached_slurm(
    services: Services, app: Flask, jobs_before: int, submits_before: float, squeue_before: dict
) -> None:
    time.sleep(1.5)  # a worker cycle or more
    assert _count_jobs(services) == jobs_before  # no job row
    assert _submits(app) == submits_before  # no submit call at all
    with services.engine.connect() as conn:
        ours = {f"hpcgw-{r[0]}" for r in conn.execute(sa.text("SELECT id FROM jobs"))}
    new = {i: n for i, n in _slurm_jobs_of("alice").items() if i not in squeue_before}
    new.update({i: n for i, n in _slurm_jobs_of("bob").items() if i not in squeue_before})
    assert not [n for n in new.values() if n in ours]


def test_over_budget_submission_is_refused(scenario: Scenario) -> None:
    client = scenario.app.test_client()
    services = scenario.services
    # a user may not set budgets
    denied = client.put(
        "/accounting/budgets",
        json={"scope": "user", "name": "alice", "period": "month", "limit_core_hours": 100},
        headers=as_user("alice"),
    )
    assert denied.status_code == 403
    assert client.get("/accounting/budgets", headers=as_user("alice")).status_code == 403
    used = _sacct_by_user(scenario)["alice"] / 3600
    quoted = client.post(
        "/processes/echo/quotations", json={"inputs": {}}, headers=as_user("alice")
    ).get_json()["core_hours"]
    limit = round(used + quoted / 2, 6)  # room for half a run only
    ok = client.put(
        "/accounting/budgets",
        json={"scope": "user", "name": "alice", "period": "month", "limit_core_hours": limit},
        headers=as_user("admin"),
    )
    assert ok.status_code == 200, ok.get_json()
    listed = client.get("/accounting/budgets", headers=as_user("admin")).get_json()["budgets"]
    status = next(b for b in listed if b["name"] == "alice")["status"]
    assert status["used_core_hours"] == pytest.approx(used, abs=1e-6)
    _site_budgets_over_http(client, services.settings.default_site)

    jobs_before, submits_before = _count_jobs(services), _submits(scenario.app)
    squeue_before = {**_slurm_jobs_of("alice"), **_slurm_jobs_of("bob")}
    refused = client.post(
        "/processes/echo/execution",
        json={"inputs": {"string_input": "too much"}},
        headers={**as_user("alice"), "Prefer": "respond-async"},
    )
    assert refused.status_code == 403
    doc = refused.get_json()
    assert doc["type"].endswith("quota-exceeded")
    assert "monthly budget of user 'alice'" in doc["detail"]
    assert f"used {used:.4f} core-hours" in doc["detail"]
    assert f"limit {limit:.4f}" in doc["detail"]
    _assert_nothing_reached_slurm(
        services, scenario.app, jobs_before, submits_before, squeue_before
    )

    # bob is not concerned by alice's budget, but is by a project budget
    quote = client.post(
        "/processes/echo/quotations", json={"inputs": {}}, headers=as_user("bob")
    ).get_json()
    assert quote["budgets"] == []
    client.put(
        "/accounting/budgets",
        json={"scope": "project", "name": "gep", "period": "year", "limit_core_hours": 0.0001},
        headers=as_user("admin"),
    )
    refused_bob = client.post(
        "/processes/echo/execution", json={"inputs": {}}, headers=as_user("bob")
    )
    assert refused_bob.status_code == 403
    assert "yearly budget of project 'gep'" in refused_bob.get_json()["detail"]
    _assert_nothing_reached_slurm(
        services, scenario.app, jobs_before, submits_before, squeue_before
    )
    for scope, name, period in (("user", "alice", "month"), ("project", "gep", "year")):
        gone = client.delete(
            f"/accounting/budgets/{scope}/{name}/{period}", headers=as_user("admin")
        )
        assert gone.status_code == 204


def test_dashboard_in_headless_chromium(scenario: Scenario, tmp_path: Path) -> None:
    problem = chromium_problem()
    if problem:
        pytest.fail(problem) if _required() else pytest.skip(problem)
    from selenium.webdriver.common.by import By

    expected = _sacct_by_user(scenario)
    with live_server(scenario.app) as base, headless_chromium(as_user("admin")) as driver:
        driver.get(f"{base}/accounting/dashboard")
        assert "Accounting dashboard" in driver.title
        total = driver.find_element(By.ID, "total-cpu-seconds").text
        assert int(total) == sum(expected.values())
        bars = driver.find_elements(By.CSS_SELECTOR, "#chart-by-user rect.bar")
        by_user = {
            b.get_attribute("data-label"): float(b.get_attribute("data-value")) for b in bars
        }
        assert by_user.keys() == expected.keys()
        for user, seconds in expected.items():
            assert by_user[user] == pytest.approx(seconds / 3600, abs=1e-9)
        process_bars = driver.find_elements(By.CSS_SELECTOR, "#chart-by-process rect.bar")
        assert [b.get_attribute("data-label") for b in process_bars] == ["echo"]
        days = driver.find_elements(By.CSS_SELECTOR, "#chart-over-time rect.bar")
        assert sum(float(d.get_attribute("data-value")) for d in days) == pytest.approx(
            sum(expected.values()) / 3600, abs=1e-9
        )
        points = driver.find_elements(By.CSS_SELECTOR, "#chart-quote-actual circle.point")
        assert len(points) == len(scenario.jobs)
        rows = driver.find_elements(By.CSS_SELECTOR, "#usage-table tbody tr")
        cells = {
            r.get_attribute("data-user"): int(r.find_element(By.CSS_SELECTOR, ".cpu-seconds").text)
            for r in rows
        }
        assert cells == expected
        shot = tmp_path / "dashboard-admin.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
    with live_server(scenario.app) as base, headless_chromium(as_user("bob")) as driver:
        driver.get(f"{base}/accounting/dashboard")
        bars = driver.find_elements(By.CSS_SELECTOR, "#chart-by-user rect.bar")
        assert [b.get_attribute("data-label") for b in bars] == ["bob"]
        assert int(driver.find_element(By.ID, "total-cpu-seconds").text) == expected["bob"]
        driver.save_screenshot(str(tmp_path / "dashboard-bob.png"))


def _required() -> bool:
    import os

    return os.environ.get("HPCGW_REQUIRE_CLUSTER") == "1"


def _site_budgets_over_http(client: FlaskClient, site: str) -> None:
    """Per-site budgets: set, listed with their site, an unknown site refused, deleted."""
    admin = as_user("admin")
    body = {"scope": "user", "name": "alice", "period": "week", "limit_core_hours": 50}
    made = client.put("/accounting/budgets", json={**body, "site": site}, headers=admin)
    assert made.status_code == 200 and made.get_json()["site"] == site, made.get_json()
    listed = client.get(f"/accounting/budgets?site={site}", headers=admin).get_json()["budgets"]
    assert [(b["name"], b["period"], b["site"]) for b in listed] == [("alice", "week", site)]
    assert listed[0]["status"]["site"] == site
    unknown = client.put("/accounting/budgets", json={**body, "site": "atlantis"}, headers=admin)
    assert unknown.status_code == 400
    assert "unknown site 'atlantis'" in unknown.get_json()["detail"]
    url = f"/accounting/budgets/user/alice/week?site={site}"
    assert client.delete(url, headers=admin).status_code == 204
    assert client.delete(url, headers=admin).status_code == 404
