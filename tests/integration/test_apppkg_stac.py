"""EO Application Package convention on the real parts: STAC in, STAC out.

A deployed CWL tool takes a ``Directory`` input and gives a ``Directory``
output. The input is the href of a STAC Catalog served by a local HTTP server
(one Item, one tiny GeoTIFF asset): the gateway stages it, through the
stager and the egress guard, as a STAC catalog folder; the tool (a Python
script, run by cwltool as the user on the dev Slurm cluster) reads that
catalog and writes a new one; its assets are published as the job's results
and assets of the job's STAC Item (with the GeoTIFF's footprint).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_bounds

from gateway.jobs.states import JobState
from tests.conftest import sacct_settled
from tests.identity_fixtures import keycloak
from tests.integration.test_apppkg import DATA, Gateway, _execute, _wait, _wps, gw
from tests.workflow_fixtures import FileServer, file_server

pytestmark = pytest.mark.slurm

__all__ = ["file_server", "gw", "keycloak"]

BBOX = (5.0, 45.0, 5.1, 45.1)


def _serve_catalog(root: Path) -> bytes:
    """catalog.json -> item.json -> b04.tif (relative hrefs); the GeoTIFF's bytes."""
    profile = {"driver": "GTiff", "width": 4, "height": 4, "count": 1, "dtype": "uint8"}
    with rasterio.open(
        root / "b04.tif", "w", crs="EPSG:4326", transform=from_bounds(*BBOX, 4, 4), **profile
    ) as tif:
        tif.write(np.arange(16, dtype=np.uint8).reshape(1, 4, 4))
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": "scene-1",
        "geometry": None,
        "properties": {"datetime": "2026-01-01T00:00:00Z"},
        "links": [],
        "assets": {
            "B04": {
                "href": "b04.tif",
                "type": "image/tiff; application=geotiff",
                "roles": ["data"],
            }
        },
    }
    catalog = {
        "type": "Catalog",
        "stac_version": "1.0.0",
        "id": "scenes",
        "description": "one scene",
        "links": [{"rel": "item", "href": "item.json"}],
    }
    (root / "item.json").write_text(json.dumps(item))
    (root / "catalog.json").write_text(json.dumps(catalog))
    return (root / "b04.tif").read_bytes()


def test_stac_catalog_in_and_out(gw: Gateway, file_server: FileServer) -> None:
    resp = gw.deploy("dora", (DATA / "stac_copy.cwl").read_text())
    assert resp.status_code == 201, resp.get_json()
    try:
        desc = gw.client.get("/processes/stac-copy").get_json()
        assert desc["inputs"]["scenes"]["schema"]["contentMediaType"] == "application/geo+json"
        assert desc["outputs"]["copies"]["schema"]["type"] == "array"
        tif = _serve_catalog(file_server.root)

        job_id = _execute(
            gw, "dora", "stac-copy", {"scenes": {"href": file_server.href("catalog.json")}}
        )
        job = _wait(gw, job_id)
        assert job.state is JobState.SUCCESSFUL, job.message
        assert sacct_settled(job.scheduler_job_id or "", "User", "alice") == "alice"
        # staged as a STAC catalog folder: the tool found the Item and its asset
        staged = job.extra["staged_inputs"]["scenes"]
        assert staged["stac"] == {"catalog": file_server.href("catalog.json"), "items": ["scene-1"]}
        assert file_server.state.requests["/files/b04.tif"] == 1

        results = gw.client.get(f"/jobs/{job_id}/results", headers=gw.h("dora")).get_json()
        listing = gw.client.get(
            "/" + results["listing"]["href"].split("://", 1)[1].split("/", 1)[1],
            headers=gw.h("dora"),
        )
        assert listing.get_data(as_text=True).strip() == "scene-1 ['B04']"
        # the output catalog's asset: published, the same bytes, in the job's STAC Item
        (copy,) = results["copies"]
        assert copy["type"].startswith("image/tiff")
        served = gw.client.get(
            "/" + copy["href"].split("://", 1)[1].split("/", 1)[1], headers=gw.h("dora")
        )
        assert served.status_code == 200 and served.data == tif
        item = gw.client.get(f"/stac/items/{job_id}.json", headers=gw.h("dora")).get_json()
        asset = item["assets"]["copies-scene-1-B04"]
        assert asset["href"] == copy["href"] and asset["roles"] == ["data"]
        assert item["bbox"] == pytest.approx(list(BBOX))
        # WPS 2.0 clients get the same links (a JSON array: the output is an array of files)
        wps = _wps(gw, "dora", f"version=2.0.0&request=GetResult&jobId={job_id}")
        assert copy["href"] in "".join(wps.itertext())
    finally:
        assert gw.client.delete("/processes/stac-copy", headers=gw.h("dora")).status_code == 204


def test_a_directory_input_given_as_text_fails_with_the_reason(gw: Gateway) -> None:
    assert gw.deploy("dora", (DATA / "stac_copy.cwl").read_text()).status_code == 201
    try:
        job = _wait(gw, _execute(gw, "dora", "stac-copy", {"scenes": "not a reference"}))
        assert job.state is JobState.FAILED
        assert "STAC Item or Catalog href" in (job.message or "")
    finally:
        assert gw.client.delete("/processes/stac-copy", headers=gw.h("dora")).status_code == 204
