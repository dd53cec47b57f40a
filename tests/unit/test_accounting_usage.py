"""Usage recording, metrics, adapter instrumentation and the HTTP surface (no Slurm)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from gateway.accounting import tables
from gateway.accounting.config import AccountingSettings
from gateway.accounting.instrument import InstrumentedAdapter
from gateway.accounting.metrics import DatabaseCollector, render
from gateway.accounting.metrics_env import configure_multiprocess
from gateway.accounting.quotes import Pricing
from gateway.accounting.usage import UsageRecorder, not_final_reason
from gateway.app import build_services, create_app
from gateway.jobs.records import JobQuery
from gateway.jobs.states import JobState
from gateway.jobs.store import JobStore
from gateway.settings import Settings, SiteSettings
from gateway.sites import Sites
from hpc_adapters.base import SchedulerState
from hpc_adapters.errors import SchedulerBusyError
from tests.accounting_support import HeaderAuth, as_user, metric_samples, metric_sum
from tests.unit.accounting_fixtures import FakeAdapter, make_job, migrated_engine, usage

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 6, 10, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def parts(tmp_path: Path) -> tuple[JobStore, FakeAdapter, Clock]:
    return JobStore(migrated_engine(tmp_path)), FakeAdapter(), Clock()


def _recorder(
    store: JobStore, adapter: FakeAdapter, clock: Clock, wid: str = "w1"
) -> UsageRecorder:
    settings = AccountingSettings(
        usage_delay_seconds=1, usage_retry_seconds=2, usage_retry_max_seconds=8,
        prices={"*": {"*": 0.5}},
    )  # fmt: skip
    sites = Sites({"dev": SiteSettings()}, builder=lambda name, s: adapter)
    pricing = Pricing(settings, {"dev": SiteSettings()})
    return UsageRecorder(store.engine, store, sites, pricing, settings, wid, clock=clock)


def _rows(store: JobStore, table: sa.Table) -> list[dict]:
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table)).mappings().all()]


def test_not_final_reasons() -> None:
    assert not_final_reason(usage("1")) is None
    assert "RUNNING" in (not_final_reason(usage("1", state=SchedulerState.RUNNING)) or "")
    assert "end time" in (not_final_reason(usage("1", end=None)) or "")
    assert "CPUs" in (not_final_reason(usage("1", cpus=0)) or "")
    never_ran = usage("1", cpus=0, elapsed=0, state=SchedulerState.CANCELLED)
    assert not_final_reason(never_ran) is None


def test_usage_waits_for_final_accounting_then_records_exact_seconds(parts) -> None:
    store, adapter, clock = parts
    job = make_job(store, quote={"core_hours": 0.1, "cost": 0.05, "currency": "EUR"})
    recorder = _recorder(store, adapter, clock)
    recorder.on_final([job])
    recorder.on_final([job])  # idempotent
    assert len(_rows(store, tables.usage_pending)) == 1
    assert recorder.run_once() == 0  # not due before usage_delay_seconds
    clock.advance(1)
    adapter.records["100"] = usage("100", state=SchedulerState.RUNNING)  # slurmdbd lags
    assert recorder.run_once() == 1
    [pending] = _rows(store, tables.usage_pending)
    assert pending["attempts"] == 1 and "RUNNING" in pending["last_error"]
    assert pending["next_attempt_at"] == clock.now + timedelta(seconds=2)
    assert _rows(store, tables.usage) == []
    clock.advance(2)
    adapter.records["100"] = usage("100", cpus=3, elapsed=47)
    # a restarted worker (new recorder, same database) carries on
    assert _recorder(store, adapter, clock, "w1").run_once() == 1
    [row] = _rows(store, tables.usage)
    assert row["cpu_seconds"] == 141 and row["core_hours"] == 141 / 3600
    assert row["alloc_cpus"] == 3 and row["elapsed_seconds"] == 47
    assert row["project"] == "gep" and row["hpc_login"] == "alice"
    assert row["quoted_core_hours"] == 0.1 and row["quoted_cost"] == 0.05
    assert row["cost"] == pytest.approx(141 / 3600 * 0.5, abs=1e-6)
    assert row["queue_wait_seconds"] == 4
    assert _rows(store, tables.usage_pending) == []
    assert adapter.calls == [["100"], ["100"]]  # one call per cycle
    recorder.on_final([job])  # already recorded: nothing queued again
    assert _rows(store, tables.usage_pending) == []


def test_backoff_grows_and_site_errors_are_retried(parts) -> None:
    store, adapter, clock = parts
    recorder = _recorder(store, adapter, clock)
    recorder.enqueue([make_job(store, slurm_id="5"), make_job(store, "bob", slurm_id="6")])
    clock.advance(1)
    adapter.fail_next = 1
    assert recorder.run_once() == 2
    assert adapter.calls == [["5", "6"]]  # both ids in ONE call
    delays = []
    for _ in range(4):
        [row, _] = _rows(store, tables.usage_pending)
        delays.append((row["next_attempt_at"] - clock.now).total_seconds())
        clock.advance(delays[-1])
        recorder.run_once()  # no record yet for either id
    assert delays == [2, 4, 8, 8]
    assert "unreachable" not in _rows(store, tables.usage_pending)[0]["last_error"]
    clock.advance(169 * 3600)  # never final: given up, not guessed
    recorder.run_once()
    assert _rows(store, tables.usage_pending) == [] and _rows(store, tables.usage) == []


def test_sweep_queues_dismissed_jobs_and_skips_jobs_that_never_reached_slurm(parts) -> None:
    store, adapter, clock = parts
    recorder = _recorder(store, adapter, clock)
    recorder.clock = lambda: datetime.now(UTC)
    dismissed = make_job(store, state=JobState.DISMISSED, slurm_id="77")
    make_job(store, state=JobState.FAILED, slurm_id=None)
    make_job(store, state=JobState.RUNNING, slurm_id="78")
    assert recorder.sweep() == 1
    assert [r["job_id"] for r in _rows(store, tables.usage_pending)] == [dismissed.id]
    adapter.records["77"] = usage("77", state=SchedulerState.CANCELLED, cpus=1, elapsed=5)
    assert recorder.settle_now() == 1
    [row] = _rows(store, tables.usage)
    assert (row["job_id"], row["state"], row["cpu_seconds"]) == (dismissed.id, "CANCELLED", 5)


def test_one_worker_at_a_time_reads_usage(parts) -> None:
    store, adapter, clock = parts
    first, second = _recorder(store, adapter, clock, "w1"), _recorder(store, adapter, clock, "w2")
    first.enqueue([make_job(store, slurm_id="9")])
    clock.advance(1)
    assert first.run_once() == 1
    assert second.run_once() == 0  # the lease is w1's


# -- instrumentation and metrics ------------------------------------------------


def test_instrumented_adapter_times_calls_and_counts_errors() -> None:
    inner = FakeAdapter(site="instr")
    adapter = InstrumentedAdapter(inner)  # type: ignore[arg-type]
    before = metric_samples(render(_empty_collector())[0].decode())
    adapter.usages(["1"])
    inner.fail_next = 1
    with pytest.raises(SchedulerBusyError):
        adapter.usages(["2"])
    assert adapter.find_by_name("x") == [] and adapter.site == "instr"
    after = metric_samples(render(_empty_collector())[0].decode())

    def delta(name: str, **labels: str) -> float:
        return metric_sum(after, name, **labels) - metric_sum(before, name, **labels)

    assert delta("hpcgw_adapter_call_seconds_count", site="instr", method="usages") == 2
    assert delta("hpcgw_adapter_call_seconds_count", site="instr", method="find_by_name") == 1
    assert delta("hpcgw_adapter_errors_total", site="instr", error="SchedulerBusyError") == 1


def _empty_collector() -> DatabaseCollector:
    return DatabaseCollector(sa.create_engine("sqlite://"), "EUR")


def test_database_down_is_reported_not_raised() -> None:
    body = render(_empty_collector())[0].decode()  # no tables at all
    assert "hpcgw_accounting_database_up 0.0" in body


def test_multiprocess_directory_is_configured_from_settings(tmp_path: Path, monkeypatch) -> None:
    # setenv first so that monkeypatch restores the variable's original state afterwards
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "unset-me")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    assert configure_multiprocess(None, clean=True) is None
    target = tmp_path / "prom"
    target.mkdir()
    (target / "counter_1.db").write_bytes(b"old")
    assert configure_multiprocess(str(target), clean=True) == str(target.resolve())
    assert not (target / "counter_1.db").exists()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "env"))
    assert configure_multiprocess(str(target), clean=False) == str((tmp_path / "env").resolve())


# -- HTTP surface ---------------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path}/app.db"},  # type: ignore[arg-type]
        publication={"root": str(tmp_path / "pub")},  # type: ignore[arg-type]
    )
    services = build_services(settings)
    yield create_app(settings, services, authenticator=HeaderAuth())
    services.close()


def _seed(app: Flask) -> None:
    services = app.extensions["hpcgw"]
    store = services.store
    recorder = services.accounting.recorder("seed")
    for login, slurm_id, cpus, elapsed in (("alice", "1", 2, 30), ("bob", "2", 1, 45)):
        job = make_job(store, login, slurm_id=slurm_id, quote={"core_hours": 0.02})
        recorder.record(job, usage(slurm_id, user=login, cpus=cpus, elapsed=elapsed,
                                   end=datetime.now(UTC) - timedelta(hours=1)))  # fmt: skip


def test_quotation_validates_like_an_execution_and_runs_nothing(app: Flask) -> None:
    client = app.test_client()
    ok = client.post(
        "/processes/echo/quotations",
        json={"inputs": {"string_input": "x"}},
        headers=as_user("alice"),
    )
    assert ok.status_code == 200
    doc = ok.get_json()
    assert doc["core_hours"] == pytest.approx(300 / 3600, abs=1e-6)
    assert doc["basis"]["method"] == "walltime" and doc["currency"] == "EUR"
    assert doc["links"][0]["href"].endswith("/processes/echo/execution")
    assert (
        client.post(
            "/processes/echo/quotations", json={"inputs": {"nope": 1}}, headers=as_user("alice")
        ).status_code
        == 400
    )
    assert (
        client.post(
            "/processes/nope/quotations", json={"inputs": {}}, headers=as_user("alice")
        ).status_code
        == 404
    )
    assert (
        client.post("/processes/echo/quotations", data="x", headers=as_user("alice")).status_code
        == 400
    )
    assert client.post("/processes/echo/quotations", json={"inputs": {}}).status_code == 401
    assert app.extensions["hpcgw"].store.count() == 0


def test_execution_records_the_quote_and_budgets_refuse(app: Flask) -> None:
    client = app.test_client()
    headers = {**as_user("alice"), "Prefer": "respond-async"}
    created = client.post("/processes/echo/execution", json={"inputs": {}}, headers=headers)
    assert created.status_code == 201
    services = app.extensions["hpcgw"]
    [job] = services.store.page(JobQuery()).jobs
    assert job.quote is not None
    assert job.quote.core_hours == pytest.approx(300 / 3600, abs=1e-6)
    assert job.quote.project == "gep"
    put = client.put(
        "/accounting/budgets",
        json={"scope": "user", "name": "alice", "period": "month", "limit_core_hours": 0.1},
        headers=as_user("admin"),
    )
    assert put.status_code == 200
    refused = client.post("/processes/echo/execution", json={"inputs": {}}, headers=headers)
    assert refused.status_code == 403
    assert "reserved by unfinished jobs" in refused.get_json()["detail"]
    assert services.store.count() == 1
    bob = {**as_user("bob"), "Prefer": "respond-async"}
    assert (
        client.post("/processes/echo/execution", json={"inputs": {}}, headers=bob).status_code
        == 201
    )


def test_budget_endpoints_are_admin_only_and_validate(app: Flask) -> None:
    client = app.test_client()
    body = {"scope": "project", "name": "gep", "period": "quarterly", "limit_core_hours": 5}
    assert client.put("/accounting/budgets", json=body, headers=as_user("bob")).status_code == 403
    assert client.put("/accounting/budgets", json=body, headers=as_user("admin")).status_code == 200
    listed = client.get("/accounting/budgets", headers=as_user("admin")).get_json()["budgets"]
    assert listed[0]["period"] == "quarter" and listed[0]["status"]["used_core_hours"] == 0
    bad = {**body, "limit_core_hours": "lots"}
    assert client.put("/accounting/budgets", json=bad, headers=as_user("admin")).status_code == 400
    bad = {**body, "scope": "group"}
    assert client.put("/accounting/budgets", json=bad, headers=as_user("admin")).status_code == 400
    gone = client.delete("/accounting/budgets/project/gep/quarter", headers=as_user("admin"))
    assert gone.status_code == 204
    again = client.delete("/accounting/budgets/project/gep/quarter", headers=as_user("admin"))
    assert again.status_code == 404


def test_usage_endpoint_scoping_and_metrics(app: Flask) -> None:
    _seed(app)
    client = app.test_client()
    mine = client.get("/accounting/usage?groupBy=user", headers=as_user("alice")).get_json()
    assert [(r["user"], r["cpu_seconds"]) for r in mine["rows"]] == [("alice", 60)]
    everyone = client.get("/accounting/usage?groupBy=user", headers=as_user("admin")).get_json()
    assert [(r["user"], r["cpu_seconds"]) for r in everyone["rows"]] == [
        ("alice", 60), ("bob", 45)
    ]  # fmt: skip
    assert client.get("/accounting/usage?user=bob", headers=as_user("alice")).status_code == 403
    assert client.get("/accounting/usage?groupBy=x", headers=as_user("alice")).status_code == 400
    assert client.get("/accounting/usage?from=never", headers=as_user("alice")).status_code == 400
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    samples = metric_samples(metrics.get_data(as_text=True))
    # public: summed over users, no per-user label (tests/security/test_metrics_privacy.py)
    assert metric_sum(samples, "hpcgw_cpu_seconds_total") == 105
    assert not any(dict(labels).get("user") for _name, labels in samples)
    assert metric_sum(samples, "hpcgw_core_hours_total") == pytest.approx(105 / 3600)
    assert metric_sum(samples, "hpcgw_jobs", state="successful") == 2
    assert metric_sum(samples, "hpcgw_job_run_seconds_bucket", le="30.0") == 1
    assert metric_sum(samples, "hpcgw_job_run_seconds_bucket", le="60.0") == 2
    assert metric_sum(samples, "hpcgw_job_run_seconds_sum") == 75
    assert metric_sum(samples, "hpcgw_job_queue_wait_seconds_count") == 2
    page = client.get("/accounting/dashboard", headers=as_user("bob"))
    assert page.status_code == 200 and b'id="chart-by-user"' in page.data
    assert b'data-label="bob"' in page.data and b'data-label="alice"' not in page.data
    assert b'id="chart-by-site"' in page.data  # core-hours per site (federation)


def test_metrics_bearer_token(tmp_path: Path, monkeypatch) -> None:
    token = tmp_path / "scrape.token"
    token.write_text("s3cret\n")
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path}/m.db"},  # type: ignore[arg-type]
        accounting={"metrics": {"bearer_token_file": str(token)}},  # type: ignore[arg-type]
    )
    client = create_app(settings).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200


class _Files:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def write_bytes(self, path: str, data: bytes) -> None:
        self.data[path] = data

    def put_file(self, local_path: str, path: str) -> None:
        self.data[path] = Path(local_path).read_bytes()

    def get_file(self, path: str, local_path: str) -> None:
        Path(local_path).write_bytes(self.data[path])


def test_workspace_transfers_count_as_staging_bytes(tmp_path: Path) -> None:
    from gateway.accounting.instrument import InstrumentedFiles

    files = InstrumentedFiles(_Files(), "stage")  # type: ignore[arg-type]
    before = metric_samples(render(_empty_collector())[0].decode())
    files.write_bytes("/w/inputs.json", b"x" * 100)
    (tmp_path / "in.tif").write_bytes(b"y" * 1000)
    files.put_file(str(tmp_path / "in.tif"), "/w/in.tif")
    files.get_file("/w/in.tif", str(tmp_path / "out.tif"))
    after = metric_samples(render(_empty_collector())[0].decode())

    def delta(direction: str) -> float:
        labels = {"site": "stage", "direction": direction}
        name = "hpcgw_staging_bytes_total"
        return metric_sum(after, name, **labels) - metric_sum(before, name, **labels)

    assert (delta("in"), delta("out")) == (1100, 1000)


def test_grafana_dashboard_only_uses_exported_metrics(app: Flask) -> None:
    import json
    import re

    _seed(app)
    text = app.test_client().get("/metrics").get_data(as_text=True)
    exported = {
        re.sub(r"_(total|bucket|count|sum)$", "", line.split()[2])
        for line in text.splitlines()
        if line.startswith("# TYPE hpcgw_")
    }
    path = Path(__file__).resolve().parents[2] / "deploy/grafana/hpcgw-accounting.json"
    dashboard = json.loads(path.read_text())
    used = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used |= set(re.findall(r"hpcgw_[a-z_]+", target["expr"]))
    bases = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in used}
    assert bases <= exported, bases - exported
    assert len(dashboard["panels"]) >= 10
