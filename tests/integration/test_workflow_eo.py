"""The EO workflow on the real dev cluster: NDVI on a STAC Item input (staged, checksummed,
cached), outputs published with a STAC Item, progress in status documents, callbacks,
traversal in output manifests refused, dismiss cleaning the workspace.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pystac
import pystac.validation
import pytest
import rasterio
from rasterio.transform import from_origin

from gateway.app import build_services, build_worker, create_app
from gateway.errors import InvalidInput
from gateway.identity.auth import Principal
from gateway.jobs.records import JobUpdate
from gateway.jobs.states import JobState
from gateway.services import Services
from gateway.workflow.worker import Worker
from hpc_adapters.base import HpcIdentity
from tests.conftest import make_settings, worker_thread
from tests.polling import eventually
from tests.workflow_fixtures import CallbackReceiver, FileServer

pytestmark = pytest.mark.slurm

ALICE = Principal(sub="dev-user", username="alice", hpc_login="alice", roles=frozenset())


def wait_final(services: Services, job_id: str, timeout: float = 180):  # type: ignore[no-untyped-def]
    def final():  # type: ignore[no-untyped-def]
        job = services.store.get(job_id)
        return job if job.final else None

    def stuck() -> str:
        job = services.store.get(job_id)
        return f"job {job_id} to finish (stuck in {job.state}: {job.message})"

    return eventually(final, timeout, stuck)


def write_scene(path: Path) -> None:
    data = np.zeros((4, 64, 96), dtype="uint16")
    data[2] = 10  # red
    data[3] = 30  # nir
    profile = {
        "driver": "GTiff",
        "width": 96,
        "height": 64,
        "count": 4,
        "dtype": "uint16",
        "crs": "EPSG:32631",
        "transform": from_origin(500000, 4800000, 10, 10),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def write_item(root: Path) -> None:
    item = pystac.Item(
        "S2_TEST_SCENE",
        {
            "type": "Polygon",
            "coordinates": [[[3.0, 43.3], [3.01, 43.3], [3.01, 43.31], [3.0, 43.31], [3.0, 43.3]]],
        },
        [3.0, 43.3, 3.01, 43.31],
        pystac.utils.str_to_datetime("2024-06-01T10:56:19Z"),
        {},
    )
    item.add_asset(
        "image", pystac.Asset("scene.tif", media_type=pystac.MediaType.GEOTIFF, roles=["data"])
    )
    item.add_asset(
        "thumbnail", pystac.Asset("thumb.png", media_type="image/png", roles=["thumbnail"])
    )
    (root / "item.json").write_text(json.dumps(item.to_dict(include_self_link=False)))


def test_ndvi_on_a_stac_item_published_as_stac(
    services: Services,
    running_worker: Worker,
    file_server: FileServer,
    callback_receiver: CallbackReceiver,
) -> None:
    write_scene(file_server.root / "scene.tif")
    write_item(file_server.root)
    digest = hashlib.sha256((file_server.root / "scene.tif").read_bytes()).hexdigest()
    body = {
        "inputs": {"image": {"href": file_server.href("item.json"), "asset": "image"}},
        "outputs": {"ndvi": {"transmissionMode": "reference"}, "statistics": {}},
        "subscriber": {"successUri": f"{callback_receiver.url}/done"},
    }
    jobs = [services.jobs.submit(ALICE, "ndvi", body) for _ in range(2)]
    done = [wait_final(services, j.id) for j in jobs]
    for job in done:
        assert job.state is JobState.SUCCESSFUL, job.message
        staged = job.extra["staged_inputs"]["image"]
        assert staged["sha256"] == digest and staged["stac"]["asset"] == "image"
        inputs = json.loads((Path(job.workspace or "") / "inputs.json").read_text())
        assert inputs["inputs"]["image"]["sha256"] == digest
    assert file_server.state.requests["/files/scene.tif"] == 1  # cached for the second job

    app = create_app(services.settings, services)
    client = app.test_client()
    job = done[0]
    status = client.get(f"/jobs/{job.id}").get_json()
    item_link = next(link["href"] for link in status["links"] if link["rel"] == "describedby")
    base = services.settings.server.base_url
    item = client.get(item_link.removeprefix(base)).get_json()
    pystac.validation.validate_dict(item)
    assert item["properties"]["hpcgw:slurm_job_id"] == job.scheduler_job_id
    assert item["properties"]["hpcgw:inputs"]["image"]["sha256"] == digest
    assert item["properties"]["hpcgw:values"]["statistics"]["mean"] == pytest.approx(0.5)
    assert {
        "rel": "derived_from",
        "href": file_server.href("item.json"),
        "type": "application/geo+json",
    } in item["links"]
    ndvi = client.get(item["assets"]["ndvi"]["href"].removeprefix(base))
    assert ndvi.status_code == 200
    assert item["assets"]["ndvi"]["file:checksum"] == (
        "1220" + hashlib.sha256(ndvi.data).hexdigest()
    )
    assert item["bbox"][0] == pytest.approx(3.0, abs=0.1)

    eventually(lambda: len(callback_receiver.on("/done")) >= 2, 20, "both /done callbacks")
    bodies = [r.body for r in callback_receiver.on("/done")]
    assert len(bodies) == 2 and all(b["statistics"]["mean"] == pytest.approx(0.5) for b in bodies)


def test_status_documents_show_progress(services: Services, running_worker: Worker) -> None:
    client = create_app(services.settings, services).test_client()
    job = services.jobs.submit(ALICE, "echo", {"inputs": {"string_input": "x", "pause": 6}})
    seen: set[tuple[int, str]] = set()

    def finished() -> dict | None:
        doc = client.get(f"/jobs/{job.id}").get_json()
        if doc["status"] == "running":
            seen.add((doc["progress"], doc["message"]))
        return doc if doc["status"] in ("successful", "failed") else None

    doc = eventually(finished, 90, "the paused echo job to finish", every=0.3)
    assert doc["status"] == "successful" and doc["progress"] == 100
    assert any(0 < p < 100 and "pausing" in m for p, m in seen), seen


def test_redirect_into_internal_address_is_refused_at_submission(
    services: Services, file_server: FileServer
) -> None:
    """The admission probe follows the redirect and refuses with 400; no job is stored."""
    href = f"{file_server.url}/redirect?to=http://169.254.169.254/latest/meta-data/"
    before = services.store.count()
    with pytest.raises(InvalidInput, match=r"169\.254\.169\.254"):
        services.jobs.submit(ALICE, "ndvi", {"inputs": {"image": {"href": href}}})
    assert services.store.count() == before


def test_fetch_time_guard_fails_the_job_when_probing_is_off(
    tmp_path: Path, cluster: str, file_server: FileServer
) -> None:
    """Without the probe, the redirect is caught when fetching: the job fails, nothing runs."""
    settings = make_settings(
        tmp_path,
        workflow={
            "egress": {"allow_cidrs": ["127.0.0.1/32"], "probe_references": False},
            "cache": {"root": str(tmp_path / "cache")},
        },
    )
    services = build_services(settings)
    href = f"{file_server.url}/redirect?to=http://169.254.169.254/latest/meta-data/"
    try:
        with worker_thread(services):
            job = services.jobs.submit(ALICE, "ndvi", {"inputs": {"image": {"href": href}}})
            done = wait_final(services, job.id)
    finally:
        services.close()
    assert done.state is JobState.FAILED
    assert done.error and done.error["status"] == 400
    assert "169.254.169.254" in done.error["detail"] and "not allowed" in done.error["detail"]
    assert done.scheduler_job_id is None  # nothing reached the cluster


@pytest.mark.parametrize(
    "path",
    [
        "../inputs.json",
        "/etc/passwd",
        "outputs/../../x",
        "outputs/sub/x.tif",
        "outputs/..",
        "outputs/link.tif",
        "outputs/.hidden",
    ],
)
def test_traversal_in_the_output_manifest_is_refused(
    cluster: str, services: Services, path: str
) -> None:
    """A finished job's manifest naming files outside outputs/ (or links) fails the job."""
    job = services.jobs.submit(
        ALICE, "ndvi", {"inputs": {"image": {"href": "s3://eo-bucket/k.tif"}}}
    )
    site = services.sites.settings(job.site)
    workspace = f"{site.workspace_root}/{job.id}"
    files = services.sites.adapter(job.site).files(HpcIdentity("alice"))
    files.mkdir(f"{workspace}/outputs")
    files.write_bytes(f"{workspace}/outputs/ok.tif", b"data")
    os.symlink("/etc/passwd", f"{workspace}/outputs/link.tif")
    manifest = {"outputs": {"ndvi": {"path": path, "type": "image/tiff"}}}
    files.write_bytes(f"{workspace}/outputs.json", json.dumps(manifest).encode())
    for state in (JobState.STAGING, JobState.QUEUED, JobState.RUNNING, JobState.PUBLISHING):
        services.store.transition(job.id, state)
    services.store.update(
        job.id,
        JobUpdate(
            workspace=workspace, scheduler_state="COMPLETED", exit_code=0, scheduler_job_id="1"
        ),
    )
    finaliser = build_worker(services).finaliser
    finaliser.finalise(services.store.get(job.id))
    done = services.store.get(job.id)
    assert done.state is JobState.FAILED, path
    assert "Invalid process outputs" in (done.message or "")
    published = services.publication_root / job.id
    assert not published.exists() or not any(published.iterdir())
    files.remove_tree(workspace)


def test_dismiss_cleans_the_workspace(services: Services, running_worker: Worker) -> None:
    job = services.jobs.submit(ALICE, "echo", {"inputs": {"string_input": "x", "pause": 60}})
    current = eventually(
        lambda: (j := services.store.get(job.id)).state is JobState.RUNNING and j,
        60,
        "the job to run",
    )
    workspace = Path(current.workspace or "")
    assert workspace.is_dir()
    services.jobs.dismiss(ALICE, job.id)
    eventually(lambda: not workspace.exists(), 20, f"{workspace} to be removed")
