"""The EO services as real HPC jobs: optical-correlation fanned out over a Slurm job array.

Inputs are the demo EO mirror's optical pair (``deploy/eo_mirror``: the second
date shows the ground moved by a known 3 px east, 2 px south), served over HTTP
in-process, the reference as a STAC Item asset. Jobs run through the gateway
(job service, worker, slurmrestd) on the 22.05 ``hpcgw`` and the 24.11
``mesocentre`` clusters and are cross-checked with each cluster's ``sacct``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pystac.validation
import pytest
import rasterio
import sqlalchemy as sa
import xarray as xr
from rasterio.transform import Affine, from_origin
from rio_cogeo.cogeo import cog_validate

from deploy.eo_mirror.catalog import ensure_mirror, item_path
from deploy.eo_mirror.scenes import OPTICAL_SHIFT, PIXEL_M, SAR_CHANGE_WINDOW, make_scenes
from deploy.eo_mirror.server import MirrorServer
from gateway.accounting import tables
from gateway.app import create_app
from gateway.identity.auth import Principal
from gateway.jobs.records import Job
from gateway.jobs.states import JobState
from gateway.services import Services
from tests.clusters import CLUSTERS, HPCGW, MESOCENTRE, DevCluster
from tests.conftest import worker_thread
from tests.faults import site_services
from tests.integration.adapters import SSH_WORK_ROOT
from tests.integration.test_two_sites import _sites as two_sites
from tests.integration.test_workflow_eo import wait_final
from tests.polling import eventually
from tests.workflow_fixtures import FileServer

pytestmark = pytest.mark.slurm

ALICE = Principal(sub="dev-user", username="alice", hpc_login="alice", roles=frozenset())
REFERENCE = "demo-optical-20260601"
SECONDARY = "demo-optical-20260611"
STEP = 8
FAST_USAGE = {
    "usage_delay_seconds": 0.5,
    "usage_retry_seconds": 0.5,
    "usage_retry_max_seconds": 2,
    "usage_sweep_seconds": 1,
}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo EO mirror (generated once into a temporary folder) on a free port."""
    server = MirrorServer(ensure_mirror(tmp_path_factory.mktemp("mirror") / "v")).start()
    yield server.url
    server.stop()


def correlation_body(mirror: str, tiles: int, **inputs: object) -> dict[str, object]:
    return {
        "inputs": {
            "reference": {"href": f"{mirror}/{item_path(REFERENCE)}", "asset": "image"},
            "secondary": {"href": f"{mirror}/{item_path(SECONDARY).removesuffix('.json')}.tif"},
            "band": 4,
            "window": 32,
            "step": STEP,
            "upsample": 20,
            "tiles": tiles,
            **inputs,
        },
        "outputs": {"displacement": {"transmissionMode": "reference"}, "statistics": {}},
    }


def sacct_tasks(dev: DevCluster, slurm_id: str) -> dict[str, tuple[str, int]]:
    """``<id>_<n>`` -> (State, CPUTimeRAW) of every array task, from the cluster's sacct."""
    out = dev.run("sacct", "-j", slurm_id, "-X", "-n", "-P", "-o", "JobID,State,CPUTimeRAW").stdout
    rows = (line.split("|") for line in out.splitlines() if line.strip())
    return {r[0]: (r[1], int(r[2] or 0)) for r in rows}


def listed_tasks(dev: DevCluster, slurm_id: str, count: int) -> dict[str, tuple[str, int]]:
    """:func:`sacct_tasks` once slurmdbd lists all ``count`` tasks (the gateway may see the
    array end, through slurmrestd, before its accounting records are all written)."""

    def listed() -> dict[str, tuple[str, int]] | None:
        tasks = sacct_tasks(dev, slurm_id)
        return tasks if len(tasks) == count else None

    return eventually(listed, 60, lambda: f"sacct to list {count} tasks of {slurm_id}")


def published_cog(
    services: Services, job: Job, tmp_path: Path, output: str = "displacement"
) -> Path:
    """The job's COG ``output``, downloaded through the gateway's own routes."""
    client = create_app(services.settings, services).test_client()
    base = services.settings.server.base_url
    status = client.get(f"/jobs/{job.id}").get_json()
    item_link = next(link["href"] for link in status["links"] if link["rel"] == "describedby")
    item = client.get(item_link.removeprefix(base)).get_json()
    pystac.validation.validate_dict(item)  # core + file/projection/raster, offline
    asset = item["assets"][output]
    href = asset["href"]
    path = tmp_path / f"{job.id}.tif"
    path.write_bytes(client.get(href.removeprefix(base)).data)
    with rasterio.open(path) as ds:
        assert asset["proj:code"] == f"EPSG:{ds.crs.to_epsg()}"
        assert asset["proj:shape"] == [ds.height, ds.width]
        assert [b["data_type"] for b in asset["raster:bands"]] == list(ds.dtypes)
        assert all(b["nodata"] == ds.nodata for b in asset["raster:bands"])
    assert asset["file:size"] == path.stat().st_size
    assert asset["file:checksum"] == "1220" + hashlib.sha256(path.read_bytes()).hexdigest()
    return path


def usage_cpu_seconds(services: Services, job_id: str) -> int:
    def recorded() -> int | None:
        query = sa.select(tables.usage.c.cpu_seconds).where(tables.usage.c.job_id == job_id)
        with services.engine.connect() as conn:
            return conn.execute(query).scalar()

    return eventually(recorded, 120, f"the usage record of {job_id}")


@pytest.mark.parametrize("dev_name", ["hpcgw", "mesocentre"])
def test_optical_correlation_as_a_job_array_recovers_the_known_shift(
    dev_name: str, cluster: str, mirror: str, tmp_path: Path
) -> None:
    dev = CLUSTERS[dev_name]
    with (
        site_services(tmp_path, dev, accounting=FAST_USAGE) as services,
        worker_thread(services),
    ):
        job = services.jobs.submit(ALICE, "optical-correlation", correlation_body(mirror, 4))
        done = wait_final(services, job.id, timeout=600)
        assert done.state is JobState.SUCCESSFUL, done.message
        stats = done.results["statistics"]
        dx, dy = OPTICAL_SHIFT
        assert stats["median_east_px"] == pytest.approx(dx, abs=0.05)
        assert stats["median_south_px"] == pytest.approx(dy, abs=0.05)
        assert stats["mean_score"] > 0.8 and stats["tiles"] == 4

        slurm_id = done.scheduler_job_id or ""
        tasks = listed_tasks(dev, slurm_id, 4)
        assert set(tasks) == {f"{slurm_id}_{i}" for i in range(4)}
        assert dev.sacct_field(f"{slurm_id}_0", "JobName") == f"hpcgw-{job.id}"
        # the usage record sums every task's core time
        assert usage_cpu_seconds(services, job.id) == sum(cpu for _, cpu in tasks.values())

        cog = published_cog(services, done, tmp_path)
    valid, errors, _ = cog_validate(str(cog), quiet=True)
    assert valid, errors
    scene = make_scenes()[0]
    with rasterio.open(cog) as ds:
        assert ds.crs.to_epsg() == 32631 and ds.count == 4
        assert ds.transform.almost_equals(scene.transform @ Affine.scale(STEP))
        east = ds.read(1, masked=True)
    assert float(np.ma.median(east)) == pytest.approx(dx * PIXEL_M, abs=0.5)


def test_tiles_do_not_change_the_result_and_bad_input_fails_with_its_message(
    cluster: str, mirror: str, tmp_path: Path
) -> None:
    with site_services(tmp_path, HPCGW) as services, worker_thread(services):
        one = services.jobs.submit(ALICE, "optical-correlation", correlation_body(mirror, 1))
        three = services.jobs.submit(ALICE, "optical-correlation", correlation_body(mirror, 3))
        bad = services.jobs.submit(
            ALICE, "optical-correlation", correlation_body(mirror, 2, band=9)
        )
        done = [wait_final(services, j.id, timeout=600) for j in (one, three, bad)]
        assert [d.state for d in done[:2]] == [JobState.SUCCESSFUL] * 2, done[0].message
        rasters = []
        for job in done[:2]:
            with rasterio.open(published_cog(services, job, tmp_path)) as ds:
                rasters.append(ds.read())
    np.testing.assert_array_equal(rasters[0], rasters[1])
    failed = done[2]
    assert failed.state is JobState.FAILED
    assert "band=9 is out of range" in (failed.message or "")
    assert "Traceback" not in (failed.message or "")


def test_dismiss_cancels_every_task_of_the_array(cluster: str, mirror: str, tmp_path: Path) -> None:
    with site_services(tmp_path, HPCGW) as services, worker_thread(services):
        # a slow run (one measurement per pixel, 1/1000 px) so it is still running
        body = correlation_body(mirror, 4, step=1, upsample=1000)
        job = services.jobs.submit(ALICE, "optical-correlation", body)
        running = eventually(
            lambda: (j := services.store.get(job.id)).state is JobState.RUNNING and j,
            300,
            "the array to run",
        )
        slurm_id = running.scheduler_job_id or ""
        services.jobs.dismiss(ALICE, job.id)

        def all_cancelled() -> bool:
            tasks = sacct_tasks(HPCGW, slurm_id)
            return len(tasks) == 4 and all(s.startswith("CANCELLED") for s, _ in tasks.values())

        eventually(all_cancelled, 60, f"every task of array {slurm_id} to be cancelled")
        assert services.store.get(job.id).state is JobState.DISMISSED


def ssh_sites() -> dict[str, object]:
    """Both dev clusters, the 24.11 one reached over SSH (sbatch --array, squeue, sacct)."""
    os.makedirs(SSH_WORK_ROOT, exist_ok=True)
    os.chmod(SSH_WORK_ROOT, 0o1777)
    return two_sites("ssh")


def test_sar_change_over_ssh_finds_the_known_change(
    cluster: str, mirror: str, tmp_path: Path
) -> None:
    pre, post = "demo-sar-20260603", "demo-sar-20260615"
    body = {
        "inputs": {
            "pre": {"href": f"{mirror}/{item_path(pre)}", "asset": "image"},
            "post": {"href": f"{mirror}/{item_path(post)}", "asset": "image"},
            "tiles": 4,
        },
        "outputs": {"change": {"transmissionMode": "reference"}, "statistics": {}},
    }
    with (
        site_services(tmp_path, MESOCENTRE, sites=ssh_sites()) as services,
        worker_thread(services),
    ):
        job = services.jobs.submit(ALICE, "sar-change", body)
        done = wait_final(services, job.id, timeout=600)
        assert done.state is JobState.SUCCESSFUL, done.message
        listed_tasks(MESOCENTRE, done.scheduler_job_id or "", 4)
        cog = published_cog(services, done, tmp_path, "change")
    r0, c0, h, w = SAR_CHANGE_WINDOW
    with rasterio.open(cog) as ds:
        change = ds.read(2)
    truth = np.zeros(change.shape, dtype=bool)
    truth[r0 : r0 + h, c0 : c0 + w] = True
    found = change != 0
    f1 = 2 * int((found & truth).sum()) / (found.sum() + truth.sum())
    assert f1 >= 0.95, f1
    stats = done.results["statistics"]
    assert stats["changed_area"] == pytest.approx(found.sum() * PIXEL_M**2)


def write_complex_pair(root: Path, rows: int, cols: int) -> None:
    """``s1.tif`` and ``s2.tif``: one complex image and itself phase-shifted (coherence 1)."""
    rng = np.random.default_rng(5)
    slc = rng.normal(size=(rows, cols)) + 1j * rng.normal(size=(rows, cols))
    profile = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": 1,
        "dtype": "complex64",
        "crs": "EPSG:32631",
        "transform": from_origin(500000, 4800000, 10, 10),
    }
    for name, data in (("s1.tif", slc), ("s2.tif", slc * np.exp(0.3j))):
        with rasterio.open(root / name, "w", **profile) as dst:
            dst.write(data.astype(np.complex64), 1)


def test_coherence_of_identical_complex_images_is_one(
    cluster: str, file_server: FileServer, tmp_path: Path
) -> None:
    write_complex_pair(file_server.root, 64, 64)
    body = {
        "inputs": {
            "first": {"href": file_server.href("s1.tif")},
            "second": {"href": file_server.href("s2.tif")},
            "tiles": 2,
        },
        "outputs": {"statistics": {}},
    }
    with site_services(tmp_path, HPCGW) as services, worker_thread(services):
        job = services.jobs.submit(ALICE, "coherence", body)
        done = wait_final(services, job.id, timeout=600)
    assert done.state is JobState.SUCCESSFUL, done.message
    assert done.results["statistics"]["median_coherence"] > 0.99
    assert done.results["statistics"]["tiles"] == 2


def test_the_tile_count_follows_the_image_height_when_not_given(
    cluster: str, file_server: FileServer, tmp_path: Path
) -> None:
    """coherence tiles by 2048 rows: a 2100-row pair runs as 2 array tasks, the
    job records the count, and the published COG's STAC asset carries its grid."""
    write_complex_pair(file_server.root, 2100, 16)
    body = {
        "inputs": {
            "first": {"href": file_server.href("s1.tif")},
            "second": {"href": file_server.href("s2.tif")},
        },
        "outputs": {"coherence": {"transmissionMode": "reference"}, "statistics": {}},
    }
    with site_services(tmp_path, HPCGW) as services, worker_thread(services):
        job = services.jobs.submit(ALICE, "coherence", body)
        assert job.inputs["tiles"] == 2
        done = wait_final(services, job.id, timeout=600)
        assert done.state is JobState.SUCCESSFUL, done.message
        assert done.results["statistics"]["tiles"] == 2
        tasks = listed_tasks(HPCGW, done.scheduler_job_id or "", 2)
        assert set(tasks) == {f"{done.scheduler_job_id}_{i}" for i in range(2)}
        cog = published_cog(services, done, tmp_path, "coherence")
    with rasterio.open(cog) as ds:
        assert (ds.height, ds.width) == (2100, 16)


def test_format_zarr_publishes_a_consolidated_store(
    cluster: str, mirror: str, tmp_path: Path
) -> None:
    body = correlation_body(mirror, 2, format="zarr")
    with site_services(tmp_path, HPCGW) as services, worker_thread(services):
        job = services.jobs.submit(ALICE, "optical-correlation", body)
        done = wait_final(services, job.id, timeout=600)
        assert done.state is JobState.SUCCESSFUL, done.message
        result = done.results["displacement"]
        assert result["type"] == "application/vnd+zarr"
        assert result["href"].endswith(f"/jobs/{job.id}/outputs/displacement.zarr")
        client = create_app(services.settings, services).test_client()
        base = services.settings.server.base_url
        meta = client.get(result["href"].removeprefix(base) + "/.zmetadata")
        assert meta.status_code == 200 and "east/.zarray" in json.loads(meta.data)["metadata"]
        assert client.get(result["href"].removeprefix(base) + "/../x").status_code == 404
        item = client.get(f"/stac/items/{job.id}.json").get_json()
        pystac.validation.validate_dict(item)
        asset = item["assets"]["displacement"]
        assert asset["type"] == "application/vnd+zarr" and asset["file:size"] > 0
        store = services.publication_root / job.id / "displacement.zarr"
        dataset = xr.open_zarr(store, consolidated=True)
    dx, _ = OPTICAL_SHIFT
    assert dataset.attrs["proj:code"] == "EPSG:32631"
    assert float(dataset["east"].median()) == pytest.approx(dx * PIXEL_M, abs=0.5)
