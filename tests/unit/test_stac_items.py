"""STAC Items and Catalog of published results: content, offline validation, visibility."""

from __future__ import annotations

import uuid
from hashlib import sha256
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pystac.validation
import pytest
import rasterio
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterExtension
from rasterio.transform import from_origin

from gateway.app import create_app
from gateway.jobs.records import Job, JobUpdate, NewJob, Owner
from gateway.jobs.states import JobState
from gateway.publication.footprint import publication_record
from gateway.publication.retention import apply_retention
from gateway.publication.stac_items import FILE_EXT, PROJ_EXT, RASTER_EXT, catalog, job_item
from gateway.services import Services

pytestmark = pytest.mark.unit

BASE = "http://gw.example:5000"
ME = Owner("dev-user", "alice", "alice")  # the no-auth default user
BOB = Owner("sub-bob", "bob", "bob")
ITEM_INPUT = {"href": "https://data.example.org/S2/item.json", "asset": "image"}


def validate_offline(doc: dict[str, Any]) -> None:
    """pystac validation with the core and extension schemas it bundles (no network)."""
    pystac.validation.validate_dict(doc)


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"server": {"base_url": BASE}}


@pytest.fixture
def client(services: Services):  # type: ignore[no-untyped-def]
    app = create_app(services.settings, services)
    app.testing = True
    return app.test_client()


def write_geotiff(path: Path) -> None:
    profile = {
        "driver": "GTiff",
        "width": 20,
        "height": 10,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:32631",
        "transform": from_origin(500000, 4800000, 10, 10),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((1, 10, 20), 0.5, dtype="float32"))


def published_job(services: Services, owner: Owner = ME) -> Job:
    """A successful NDVI job whose outputs were published like the finaliser does."""
    job = services.store.create(
        NewJob(
            id=str(uuid.uuid4()),
            process_id="ndvi",
            process_version="1.0.0",
            owner=owner,
            site="dev",
            inputs={"image": ITEM_INPUT, "red_band": 3},
        )
    )
    folder = services.publication_root / job.id
    folder.mkdir(parents=True)
    write_geotiff(folder / "ndvi.tif")
    (folder / "quicklook.png").write_bytes(b"\x89PNG\r\n")
    results = {
        "ndvi": {
            "href": f"{BASE}/jobs/{job.id}/outputs/ndvi.tif",
            "type": "image/tiff; application=geotiff",
        },
        "quicklook": {"href": f"{BASE}/jobs/{job.id}/outputs/quicklook.png", "type": "image/png"},
        "statistics": {"mean": 0.5, "valid_pixels": 200},
    }
    staged = {
        "image": {
            "href": ITEM_INPUT["href"],
            "size": 4,
            "sha256": "ab" * 32,
            "stac": {
                "item": ITEM_INPUT["href"],
                "asset": "image",
                "href": "https://data.example.org/S2/scene.tif",
            },
        }
    }
    for state in (JobState.STAGING, JobState.QUEUED, JobState.RUNNING, JobState.PUBLISHING):
        services.store.transition(job.id, state, JobUpdate(scheduler_job_id="4242"))
    services.store.transition(
        job.id,
        JobState.SUCCESSFUL,
        JobUpdate(
            results=results,
            extra={"staged_inputs": staged, "publication": publication_record(folder, results)},
        ),
    )
    return services.store.get(job.id)


def test_item_has_assets_provenance_footprint_and_validates(services: Services) -> None:
    job = published_job(services)
    item = job_item(job, BASE, core_hours=0.0125)
    validate_offline(item)
    assert item["id"] == job.id
    assert set(item["assets"]) == {"ndvi", "quicklook"}
    ndvi = item["assets"]["ndvi"]
    assert ndvi["type"] == "image/tiff; application=geotiff" and ndvi["roles"] == ["data"]
    tif = services.publication_root / job.id / "ndvi.tif"
    assert ndvi["file:checksum"] == "1220" + sha256(tif.read_bytes()).hexdigest()
    assert ndvi["file:size"] > 0
    assert ndvi["proj:code"] == "EPSG:32631" and ndvi["proj:shape"] == [10, 20]
    assert len(ndvi["proj:transform"]) == 6
    (band,) = ndvi["raster:bands"]
    assert band["data_type"] == "float32" and band["statistics"]["mean"] == pytest.approx(0.5)
    assert set(item["stac_extensions"]) == {FILE_EXT, PROJ_EXT, RASTER_EXT}
    parsed = pystac.Item.from_dict(item)
    proj = ProjectionExtension.ext(parsed.assets["ndvi"])
    assert proj.code == "EPSG:32631" and proj.shape == [10, 20]
    bands = RasterExtension.ext(parsed.assets["ndvi"]).bands or []
    assert [b.data_type for b in bands] == [DataType.FLOAT32]
    assert item["assets"]["quicklook"]["roles"] == ["overview"]
    props = item["properties"]
    assert props["hpcgw:process_id"] == "ndvi" and props["hpcgw:process_version"] == "1.0.0"
    assert props["hpcgw:slurm_job_id"] == "4242" and props["hpcgw:site"] == "dev"
    assert props["hpcgw:core_hours"] == 0.0125
    assert props["hpcgw:values"] == {"statistics": {"mean": 0.5, "valid_pixels": 200}}
    assert props["hpcgw:inputs"]["image"]["sha256"] == "ab" * 32
    assert props["hpcgw:inputs"]["image"]["asset"] == "image"
    west, south, east, north = item["bbox"]
    assert 2.9 < west < east < 3.1 and 43.3 < south < north < 43.4  # UTM 31N near 3E 43.35N
    assert item["geometry"]["type"] == "Polygon"
    rels = {link["rel"]: link["href"] for link in item["links"]}
    assert rels["self"] == f"{BASE}/stac/items/{job.id}.json"
    assert rels["derived_from"] == ITEM_INPUT["href"]
    assert rels["root"] == rels["parent"] == f"{BASE}/stac/catalog.json"


def test_item_without_footprint_or_core_hours_validates(services: Services) -> None:
    job = published_job(services)
    extra = dict(job.extra)
    extra["publication"] = {k: v for k, v in extra["publication"].items() if k != "bbox"}
    services.store.update(job.id, JobUpdate(extra=extra))
    item = job_item(services.store.get(job.id), BASE)
    validate_offline(item)
    assert item["geometry"] is None and "bbox" not in item
    assert "hpcgw:core_hours" not in item["properties"]


def test_catalog_validates(services: Services) -> None:
    validate_offline(catalog(BASE, [published_job(services)], f"{BASE}/stac/catalog.json?next=x"))


def test_routes_serve_the_callers_items_only(client, services: Services) -> None:
    mine = published_job(services)
    theirs = published_job(services, owner=BOB)
    resp = client.get(f"/stac/items/{mine.id}.json")
    assert resp.status_code == 200 and resp.mimetype == "application/geo+json"
    validate_offline(resp.get_json())
    assert client.get(f"/stac/items/{theirs.id}.json").status_code == 404
    cat = client.get("/stac/catalog.json").get_json()
    validate_offline(cat)
    items = [link["href"] for link in cat["links"] if link["rel"] == "item"]
    assert items == [f"{BASE}/stac/items/{mine.id}.json"]
    status = client.get(f"/jobs/{mine.id}").get_json()
    described = next(link for link in status["links"] if link["rel"] == "describedby")
    assert described["href"] == f"{BASE}/stac/items/{mine.id}.json"


def test_unfinished_and_expired_jobs_have_no_item(client, services: Services) -> None:
    running = services.store.create(
        NewJob(
            id=str(uuid.uuid4()),
            process_id="echo",
            process_version="1.0.0",
            owner=ME,
            site="dev",
            inputs={},
        )
    )
    resp = client.get(f"/stac/items/{running.id}.json")
    assert resp.status_code == 404 and "only successful jobs" in resp.get_json()["detail"]
    assert client.get("/stac/items/not-a-uuid.json").status_code == 404
    job = published_job(services)
    report = apply_retention(
        services.store, services.publication_root, published_days=1e-9, dry_run=False
    )
    assert report.expired_jobs == [job.id] and report.published_bytes > 0
    assert not (services.publication_root / job.id).exists()
    resp = client.get(f"/stac/items/{job.id}.json")
    assert resp.status_code == 404 and "retention" in resp.get_json()["detail"]
    assert client.get(f"/jobs/{job.id}/outputs/ndvi.tif").status_code == 404
    cat = client.get("/stac/catalog.json").get_json()
    assert not [link for link in cat["links"] if link["rel"] == "item"]


def test_retention_keeps_recent_outputs_and_removes_orphans(services: Services) -> None:
    job = published_job(services)
    orphan = services.publication_root / str(uuid.uuid4())
    orphan.mkdir()
    (orphan / "x.tif").write_bytes(b"x" * 10)
    dry = apply_retention(services.store, services.publication_root, 30, dry_run=True)
    assert dry.orphans == [orphan.name] and dry.expired_jobs == [] and orphan.exists()
    report = apply_retention(services.store, services.publication_root, 30)
    assert report.orphans == [orphan.name] and not orphan.exists()
    assert (services.publication_root / job.id / "ndvi.tif").exists()
