"""End to end, as a new user would: NDVI on a STAC Item URL through a running gateway,
progress followed, result opened from the job's STAC Item, callbacks received; SSRF
attempts refused with 400 before any job exists.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pystac
import pystac.validation
import pytest
import rasterio
from rasterio.transform import from_origin

from tests.polling import eventually
from tests.workflow_fixtures import start_callback_receiver

pytestmark = pytest.mark.e2e


def _scene(path: Path) -> None:
    data = np.zeros((4, 300, 400), dtype="uint16")
    data[2] = 10
    data[3] = 30
    profile = {
        "driver": "GTiff",
        "width": 400,
        "height": 300,
        "count": 4,
        "dtype": "uint16",
        "crs": "EPSG:32631",
        "transform": from_origin(500000, 4800000, 10, 10),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def _item(root: Path) -> None:
    item = pystac.Item(
        "S2_E2E", None, None, pystac.utils.str_to_datetime("2024-06-01T00:00:00Z"), {}
    )
    item.add_asset(
        "visual", pystac.Asset("e2e-scene.tif", media_type=pystac.MediaType.GEOTIFF, roles=["data"])
    )
    (root / "e2e-item.json").write_text(json.dumps(item.to_dict(include_self_link=False)))


def _job_count(http: httpx.Client, url: str) -> int:
    return len(http.get(f"{url}/jobs", params={"limit": 1000}).json()["jobs"])


def test_ndvi_on_a_stac_item_url(gateway_url: str, file_server, tmp_path: Path) -> None:
    base, root = file_server
    _scene(root / "e2e-scene.tif")
    _item(root)
    receiver, server = start_callback_receiver()
    try:
        with httpx.Client(timeout=60) as http:
            resp = http.post(
                f"{gateway_url}/processes/ndvi/execution",
                json={
                    "inputs": {"image": {"href": f"{base}/e2e-item.json", "role": "data"}},
                    "outputs": {
                        "ndvi": {"transmissionMode": "reference"},
                        "quicklook": {"transmissionMode": "reference"},
                        "statistics": {},
                    },
                    "subscriber": {
                        "successUri": f"{receiver.url}/ok",
                        "inProgressUri": f"{receiver.url}/progress",
                        "failedUri": f"{receiver.url}/ko",
                    },
                },
                headers={"Prefer": "respond-async"},
            )
            assert resp.status_code == 201, resp.text
            job_url = resp.headers["Location"]
            progress: list[int] = []

            def finished() -> dict | None:
                status = http.get(job_url).json()
                progress.append(status["progress"])
                return status if status["status"] in ("successful", "failed") else None

            status = eventually(finished, 180, "the ndvi job to finish")
            assert status["status"] == "successful", status
            assert progress == sorted(progress) and progress[-1] == 100

            item_url = next(x["href"] for x in status["links"] if x["rel"] == "describedby")
            item_resp = http.get(item_url)
            assert item_resp.headers["content-type"].startswith("application/geo+json")
            item = item_resp.json()
            pystac.validation.validate_dict(item)
            assert item["properties"]["hpcgw:process_id"] == "ndvi"
            assert item["properties"]["hpcgw:slurm_job_id"] == str(status["slurmJobId"])
            assert item["properties"]["hpcgw:inputs"]["image"]["stac"]["asset"] == "visual"
            tif = http.get(item["assets"]["ndvi"]["href"])
            assert tif.status_code == 200
            out = tmp_path / "ndvi.tif"
            out.write_bytes(tif.content)
            with rasterio.open(out) as ds:
                assert np.allclose(ds.read(1), 0.5)
            assert http.get(item["assets"]["quicklook"]["href"]).status_code == 200

            catalog = http.get(f"{gateway_url}/stac/catalog.json").json()
            pystac.validation.validate_dict(catalog)
            assert item_url in [x["href"] for x in catalog["links"] if x["rel"] == "item"]

        eventually(lambda: receiver.on("/ok"), 20, "the success callback")
        (ok,) = receiver.on("/ok")
        assert ok.body["statistics"]["mean"] == pytest.approx(0.5)
        assert not receiver.on("/ko")
        assert all(r.body["jobID"] == status["jobID"] for r in receiver.on("/progress"))
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "image",
    [
        {"href": "http://169.254.169.254/latest/meta-data/iam"},
        {"href": "http://10.0.0.1/scene.tif"},
        {"href": "http://[::1]:8080/scene.tif"},
        {"href": "http://[::ffff:127.0.0.1]/scene.tif"},
        {"href": "http://[fd00::1]/scene.tif"},
        {"href": "http://0.0.0.0:5000/"},
        {"href": "http://169.254.169.254/item.json", "asset": "B04"},
        {"href": "file:///etc/passwd"},
        {"href": "gopher://example.org/"},
    ],
)
def test_ssrf_attempts_are_400_before_any_job(gateway_url: str, image: dict) -> None:
    with httpx.Client(timeout=30) as http:
        before = _job_count(http, gateway_url)
        resp = http.post(
            f"{gateway_url}/processes/ndvi/execution",
            json={"inputs": {"image": image}},
            headers={"Prefer": "respond-async"},
        )
        assert resp.status_code == 400, resp.text
        doc = resp.json()
        assert doc["status"] == 400 and "input 'image'" in doc["detail"]
        assert _job_count(http, gateway_url) == before


def test_ssrf_callback_is_400(gateway_url: str) -> None:
    with httpx.Client(timeout=30) as http:
        before = _job_count(http, gateway_url)
        resp = http.post(
            f"{gateway_url}/processes/echo/execution",
            json={
                "inputs": {"string_input": "x"},
                "subscriber": {"successUri": "http://169.254.169.254/hook"},
            },
            headers={"Prefer": "respond-async"},
        )
        assert resp.status_code == 400 and "subscriber" in resp.json()["detail"]
        assert _job_count(http, gateway_url) == before
