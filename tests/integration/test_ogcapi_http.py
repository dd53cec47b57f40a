"""The OGC API over real HTTP, with a worker and the real dev cluster behind it.

The app runs in a werkzeug server thread on a free port (its base URL is that
port, so Location headers and hrefs are followed as given) and a worker thread
drives the jobs through Slurm.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from gateway.app import build_services, create_app, start_background_worker
from tests.conftest import make_settings, squeue_ids
from tests.polling import eventually

pytestmark = pytest.mark.slurm


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def base_url(cluster: str, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(
        tmp_path, server={"base_url": url, "port": port, "sync_timeout_seconds": 90}
    )
    services = build_services(settings)
    server = make_server("127.0.0.1", port, create_app(settings, services), threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    worker, stop = start_background_worker(services)
    yield url
    stop.set()
    worker.join(timeout=10)
    server.shutdown()
    services.close()


def _wait_final(http: httpx.Client, job_url: str, timeout: float = 120) -> dict[str, Any]:
    def final() -> dict | None:
        status = http.get(job_url).json()
        return status if status["status"] in ("successful", "failed", "dismissed") else None

    return eventually(final, timeout, f"{job_url} to finish", every=0.3)


def test_async_echo_then_results_document(base_url: str) -> None:
    with httpx.Client(timeout=30) as http:
        r = http.post(
            f"{base_url}/processes/echo/execution",
            json={"inputs": {"string_input": "over http", "integer_input": 3}},
            headers={"Prefer": "respond-async"},
        )
        assert r.status_code == 201 and r.json()["status"] == "accepted"
        final = _wait_final(http, r.headers["Location"])
        assert final["status"] == "successful", final
        assert final["slurmJobId"]
        results_link = next(lk for lk in final["links"] if lk["rel"].endswith("/results"))
        results = http.get(results_link["href"])
    assert results.json() == {"string_output": "over http", "integer_output": 3}


def test_sync_raw_single_value(base_url: str) -> None:
    r = httpx.post(
        f"{base_url}/processes/echo/execution",
        json={
            "inputs": {"string_input": "sync"},
            "outputs": {"string_output": {}},
            "response": "raw",
        },
        timeout=120,
    )
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json" and r.json() == "sync"
    assert "rel=monitor" in r.headers["Link"]


def test_failed_job_results_are_its_exception(base_url: str) -> None:
    with httpx.Client(timeout=30) as http:
        r = http.post(
            f"{base_url}/processes/echo/execution",
            json={"inputs": {"string_input": "doomed", "exit_code": 3}},
            headers={"Prefer": "respond-async"},
        )
        final = _wait_final(http, r.headers["Location"])
        assert final["status"] == "failed"
        results = http.get(f"{r.headers['Location']}/results")
    assert results.status_code == 500
    assert results.headers["Content-Type"] == "application/problem+json"
    assert "exit code 3" in results.json()["detail"]


def test_dismiss_cancels_the_slurm_job(base_url: str) -> None:
    with httpx.Client(timeout=30) as http:
        r = http.post(
            f"{base_url}/processes/echo/execution",
            json={"inputs": {"pause": 120}},
            headers={"Prefer": "respond-async"},
        )
        job_url = r.headers["Location"]

        def running() -> dict | None:
            status = http.get(job_url).json()
            return status if status["status"] == "running" and status.get("slurmJobId") else None

        status = eventually(running, 60, "the job to run on Slurm", every=0.3)
        dismissed = http.delete(job_url)
        assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"
        eventually(
            lambda: status["slurmJobId"] not in squeue_ids(), 15, "the Slurm job to leave squeue"
        )
        assert http.get(f"{job_url}/results").status_code == 404
