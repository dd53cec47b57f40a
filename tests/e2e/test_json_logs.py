"""``logging.format: json``: a real ``hpcgw serve --with-worker`` writes JSON lines that
name the job and the user -- API, gunicorn access lines and the worker alike."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import free_port, running_gateway, write_config
from tests.polling import eventually

pytestmark = pytest.mark.e2e


def _lines(log: Path) -> tuple[list[dict[str, Any]], list[str]]:
    parsed: list[dict[str, Any]] = []
    other: list[str] = []
    for line in log.read_text().splitlines():
        try:
            parsed.append(json.loads(line))
        except ValueError:
            if line.strip():
                other.append(line)
    return parsed, other


def test_a_jobs_lines_are_json_with_its_id_and_user(cluster: str, gateway_tmp: Path) -> None:
    port = free_port()
    config = write_config(gateway_tmp, port, logging={"format": "json"})
    with running_gateway(gateway_tmp, config, port) as url, httpx.Client(base_url=url) as client:
        created = client.post(
            "/processes/echo/execution",
            json={"inputs": {"string_input": "logged"}},
            headers={"Prefer": "respond-async"},
        )
        assert created.status_code == 201, created.text
        job_id = created.json()["jobID"]

        def final() -> bool:
            return client.get(f"/jobs/{job_id}").json()["status"] in ("successful", "failed")

        eventually(final, 120, "the echo job to finish")
        assert client.get(f"/jobs/{job_id}").json()["status"] == "successful"
        time.sleep(1.0)  # the worker's last lines of the job
    lines, other = _lines(gateway_tmp / "gateway.log")
    assert not other, f"lines that are not JSON: {other[:5]}"
    mine = [line for line in lines if line.get("job_id") == job_id]
    said = " | ".join(line["message"] for line in mine)
    assert any("accepted" in line["message"] for line in mine), said
    assert any("submitted as Slurm job" in line["message"] for line in mine), said
    workers = {line["logger"] for line in mine if line["logger"].startswith("gateway.workflow")}
    assert workers, f"no worker line names the job: {said}"
    assert {line.get("user") for line in mine} == {"alice"}, said
    access = [line for line in mine if line["logger"] == "gunicorn.access"]
    assert any(f"GET /jobs/{job_id}" in line["message"] for line in access), said
    assert all({"time", "level", "logger", "message", "process"} <= set(line) for line in lines)
