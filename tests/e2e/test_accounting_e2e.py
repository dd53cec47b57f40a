"""Accounting through a real ``hpcgw serve`` (2 gunicorn workers + a worker process).

Event metrics are written by whichever process sees the event -- a gunicorn
worker for quotes, the job worker for scheduler calls -- and every scrape, by
any gunicorn worker, must report their sum (prometheus-client multiprocess
mode, set up by ``hpcgw serve``). Database-backed numbers must agree with sacct.
"""

from __future__ import annotations

import httpx
import pytest

from tests.accounting_support import metric_samples, metric_sum
from tests.conftest import sacct_field
from tests.e2e.conftest import wait_final
from tests.polling import eventually

pytestmark = pytest.mark.e2e


def _scrape(client: httpx.Client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    return metric_samples(response.text)


def test_event_metrics_are_summed_over_worker_processes(gateway_url: str) -> None:
    with httpx.Client(base_url=gateway_url, timeout=30) as client:
        before = metric_sum(_scrape(client), "hpcgw_quotes_total", purpose="quotation")
        for i in range(12):
            response = client.post(
                "/processes/echo/quotations", json={"inputs": {"string_input": f"q{i}"}}
            )
            assert response.status_code == 200
        # several scrapes, served by either gunicorn worker: always the total
        for _ in range(6):
            samples = _scrape(client)
            assert metric_sum(samples, "hpcgw_quotes_total", purpose="quotation") == before + 12


def test_job_usage_reaches_metrics_and_report_from_another_process(gateway_url: str) -> None:
    with httpx.Client(base_url=gateway_url, timeout=60) as client:
        quote = client.post("/processes/echo/quotations", json={"inputs": {"pause": 1}}).json()
        created = client.post(
            "/processes/echo/execution",
            json={"inputs": {"string_input": "e2e", "pause": 1}},
            headers={"Prefer": "respond-async"},
        )
        assert created.status_code == 201
        status = wait_final(client, created.headers["Location"])
        assert status["status"] == "successful"
        job_id = status["jobID"]

        rows: list[dict] = []

        def recorded() -> dict | None:
            rows[:] = client.get("/accounting/usage?groupBy=job").json()["rows"]
            return next((r for r in rows if r["job"] == job_id), None)

        row = eventually(recorded, 60, f"the usage row of job {job_id}", every=0.5)
        raw = int(sacct_field(row["slurm_job"], "CPUTimeRAW"))
        assert row["cpu_seconds"] == raw
        assert row["quoted_core_hours"] == pytest.approx(quote["core_hours"], abs=1e-6)
        samples = _scrape(client)
        total = sum(r["cpu_seconds"] for r in rows)
        # a public scrape: usage summed over users, no per-user label (the scrape
        # token gets those: tests/security/test_metrics_privacy.py); all jobs here are alice's
        assert metric_sum(samples, "hpcgw_cpu_seconds_total") == total
        assert not any(dict(labels).get("user") for _name, labels in samples)
        # submit and usage reads happened in the worker process, scraped from a web worker
        assert metric_sum(samples, "hpcgw_adapter_call_seconds_count", method="submit") >= 1
        assert metric_sum(samples, "hpcgw_adapter_call_seconds_count", method="usages") >= 1
        assert metric_sum(samples, "hpcgw_staging_bytes_total", direction="in") > 0
        page = client.get("/accounting/dashboard")
        assert page.status_code == 200 and f'id="total-cpu-seconds">{total}<' in page.text
