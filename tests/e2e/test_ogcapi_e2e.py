"""End to end: a running gateway, the real Slurm cluster, OWSLib and plain HTTP as clients."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio
from owslib.ogcapi.processes import Processes
from rasterio.transform import from_origin

from tests.conftest import sacct_field, squeue_ids
from tests.e2e.conftest import wait_final
from tests.polling import eventually

pytestmark = pytest.mark.e2e


def test_owslib_lists_describes_and_runs_echo(gateway_url: str) -> None:
    client = Processes(gateway_url)
    ids = {p["id"] for p in client.processes()}
    assert {"echo", "ndvi"} <= ids
    echo = client.process("echo")
    assert {"string_input", "array_input", "binary_input", "mixed_input", "enum_input"} <= set(
        echo["inputs"]
    )
    inputs = {"string_input": "from owslib", "array_input": [1, 2], "enum_input": "Value2"}
    status = client.execute("echo", inputs, async_=True)
    assert status["status"] in ("accepted", "running")
    with httpx.Client(timeout=30) as http:
        final = wait_final(http, f"{gateway_url}/jobs/{status['jobID']}")
        assert final["status"] == "successful", final
        results = http.get(f"{gateway_url}/jobs/{status['jobID']}/results").json()
    assert results == {
        "string_output": "from owslib",
        "array_output": [1, 2],
        "enum_output": "Value2",
    }


def test_async_execution_with_curl_semantics(gateway_url: str) -> None:
    with httpx.Client(timeout=30) as http:
        resp = http.post(
            f"{gateway_url}/processes/echo/execution",
            json={"inputs": {"string_input": "hi", "boolean_input": True}},
            headers={"Prefer": "respond-async"},
        )
        assert resp.status_code == 201
        job_url = resp.headers["Location"]
        assert job_url.startswith(f"{gateway_url}/jobs/")
        # the job row exists before the response left
        assert http.get(job_url).status_code == 200
        final = wait_final(http, job_url)
        assert final["status"] == "successful"
        assert final["progress"] == 100
        assert final["created"] <= final["started"] <= final["finished"]
        results = http.get(f"{job_url}/results").json()
        assert results == {"string_output": "hi", "boolean_output": True}
        slurm_id = http.get(job_url).json().get("slurmJobId")
    if slurm_id:
        assert sacct_field(str(slurm_id), "User") == "alice"


def test_sync_execution_returns_results(gateway_url: str) -> None:
    resp = httpx.post(
        f"{gateway_url}/processes/echo/execution",
        json={"inputs": {"number_input": 2.5}, "response": "document"},
        timeout=90,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"number_output": 2.5}


def test_dismiss_removes_running_job_from_squeue(gateway_url: str) -> None:
    with httpx.Client(timeout=30) as http:
        resp = http.post(
            f"{gateway_url}/processes/echo/execution",
            json={"inputs": {"string_input": "long", "pause": 200}},
            headers={"Prefer": "respond-async"},
        )
        job_url = resp.headers["Location"]

        def running() -> dict | None:
            status = http.get(job_url).json()
            return status if status["status"] == "running" and status.get("slurmJobId") else None

        status = eventually(running, 60, "the job to run on Slurm", every=0.3)
        slurm_id = str(status["slurmJobId"])
        assert slurm_id in squeue_ids()
        dismissed = http.delete(job_url)
        assert dismissed.status_code == 200
        assert dismissed.json()["status"] == "dismissed"
        eventually(lambda: slurm_id not in squeue_ids(), 30, "the Slurm job to leave squeue")
        assert http.get(f"{job_url}/results").status_code == 404


def _write_scene(path: Path) -> None:
    data = np.zeros((4, 32, 48), dtype="uint16")
    data[2] = 10  # red (band 3)
    data[3] = 30  # nir (band 4)
    profile = {
        "driver": "GTiff",
        "width": 48,
        "height": 32,
        "count": 4,
        "dtype": "uint16",
        "crs": "EPSG:32631",
        "transform": from_origin(500000, 4800000, 10, 10),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def test_ndvi_on_a_referenced_geotiff(gateway_url: str, file_server, tmp_path: Path) -> None:
    base, root = file_server
    _write_scene(root / "scene.tif")
    with httpx.Client(timeout=60) as http:
        resp = http.post(
            f"{gateway_url}/processes/ndvi/execution",
            json={
                "inputs": {"image": {"href": f"{base}/scene.tif"}},
                "outputs": {"ndvi": {"transmissionMode": "reference"}, "statistics": {}},
            },
            headers={"Prefer": "respond-async"},
        )
        assert resp.status_code == 201, resp.text
        final = wait_final(http, resp.headers["Location"], timeout=180)
        assert final["status"] == "successful", final
        results = http.get(resp.headers["Location"] + "/results").json()
        assert set(results) == {"ndvi", "statistics"}
        assert results["statistics"]["mean"] == pytest.approx(0.5)
        tif = http.get(results["ndvi"]["href"])
        assert tif.status_code == 200
    out = tmp_path / "ndvi.tif"
    out.write_bytes(tif.content)
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32631
        assert np.allclose(ds.read(1), 0.5)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("post", "/processes/nope/execution", {"inputs": {}}, 404),
        ("post", "/processes/echo/execution", {"inputs": {"integer_input": "x"}}, 400),
        ("post", "/processes/echo/execution", {"inputs": {"unknown": 1}}, 400),
        ("get", "/jobs/00000000-0000-0000-0000-000000000000", None, 404),
        ("get", "/jobs/not-a-uuid/results", None, 404),
    ],
)
def test_bad_requests_get_ogc_exceptions(gateway_url, method, path, body, status) -> None:
    resp = httpx.request(method.upper(), f"{gateway_url}{path}", json=body, timeout=30)
    assert resp.status_code == status
    doc = resp.json()
    assert doc["status"] == status and doc["type"].startswith("http") and doc["detail"]
    assert "Traceback" not in resp.text


def test_malformed_json_is_400(gateway_url: str) -> None:
    resp = httpx.post(
        f"{gateway_url}/processes/echo/execution",
        content=b'{"inputs": ',
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert resp.status_code == 400
    assert resp.json()["status"] == 400
