"""Publication of outputs to S3 (moto's S3 in server mode on loopback, real HTTP).

Jobs are finalised by the real finaliser from real workspaces of the dev site
(one echo job also runs on the real cluster); results and STAC Items are read
through the gateway's HTTP routes, and every link is followed over HTTP.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pystac.validation
import pytest
import rasterio
import yaml
from flask.testing import FlaskClient
from rasterio.transform import from_origin
from typer.testing import CliRunner

from gateway.app import build_services, build_worker, create_app
from gateway.cli import app as cli
from gateway.identity.auth import Principal
from gateway.jobs.records import Job, JobUpdate, NewJob, Owner
from gateway.jobs.states import JobState
from gateway.services import Services
from hpc_adapters.base import HpcIdentity
from tests.conftest import make_settings, worker_thread
from tests.polling import eventually
from tests.workflow_fixtures import S3Endpoint

pytestmark = pytest.mark.slurm

ALICE = Principal(sub="dev-user", username="alice", hpc_login="alice", roles=frozenset())
BOB = Owner("sub-bob", "bob", "bob")
MIB = 1 << 20
PREFIX = "gw/out"
#: Workspaces the tests create on the dev site, removed after each test.
WORKSPACES: list[str] = []


@pytest.fixture(autouse=True)
def _remove_workspaces() -> Iterator[None]:
    yield
    while WORKSPACES:
        shutil.rmtree(WORKSPACES.pop(), ignore_errors=True)


def s3_settings(s3: S3Endpoint, bucket: str, **extra: Any) -> dict[str, Any]:
    """The ``publication`` section: S3 backend on the moto endpoint, small multipart parts."""
    section: dict[str, Any] = {
        "bucket": bucket,
        "prefix": PREFIX,
        "endpoint_url": s3.url,
        "access_key_id_file": str(s3.key_file),
        "secret_access_key_file": str(s3.secret_file),
        "multipart_threshold_bytes": 5 * MIB,
        "multipart_chunk_bytes": 5 * MIB,
        "max_concurrency": 2,
        "presign_expiry_seconds": 900,
        **extra,
    }
    return section


def new_bucket(s3: S3Endpoint) -> str:
    name = f"out-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def bucket(s3_endpoint: S3Endpoint) -> str:
    return new_bucket(s3_endpoint)


def make_services(tmp_path: Path, s3: S3Endpoint, bucket: str, **extra: Any) -> Services:
    publication = {
        "root": str(tmp_path / "published"),
        "backend": "s3",
        "s3": s3_settings(s3, bucket, **extra),
    }
    return build_services(make_settings(tmp_path, publication=publication))


@pytest.fixture
def services(
    tmp_path: Path, cluster: str, s3_endpoint: S3Endpoint, bucket: str
) -> Iterator[Services]:
    svc = make_services(tmp_path, s3_endpoint, bucket)
    yield svc
    svc.close()


def client_of(services: Services) -> FlaskClient:
    app = create_app(services.settings, services)
    app.testing = True
    return app.test_client()


def write_ndvi(path: Path, side: int) -> None:
    """A float32 GeoTIFF of random values (incompressible: ``4 * side**2`` bytes of data)."""
    data = np.random.default_rng(7).random((1, side, side), dtype="float32")
    profile = {
        "driver": "GTiff",
        "width": side,
        "height": side,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:32631",
        "transform": from_origin(500000, 4800000, 10, 10),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def ended_job(services: Services, tmp_path: Path, owner: Owner | None = None) -> Job:
    """An ndvi job whose Slurm job "completed": real workspace with a 12 MiB GeoTIFF, a PNG
    and ``outputs.json``, state ``publishing`` -- what the finaliser gets from the monitor."""
    job = services.store.create(
        NewJob(
            id=str(uuid.uuid4()),
            process_id="ndvi",
            process_version="1.0.0",
            owner=owner or Owner(ALICE.sub, "alice", "alice"),
            site="dev",
            inputs={"image": {"href": "s3://eo-bucket/scene.tif"}},
            outputs_request={"ndvi": {"transmissionMode": "reference"}, "statistics": {}},
        )
    )
    site = services.sites.settings("dev")
    workspace = f"{site.workspace_root}/{job.id}"
    WORKSPACES.append(workspace)
    files = services.sites.adapter("dev").files(HpcIdentity("alice"))
    files.mkdir(f"{workspace}/outputs")
    local = tmp_path / f"{job.id}.tif"
    write_ndvi(local, 1800)  # ~12.4 MiB: a multipart upload of three 5 MiB parts
    files.put_file(str(local), f"{workspace}/outputs/ndvi.tif")
    manifest = {
        "outputs": {
            "ndvi": {"path": "outputs/ndvi.tif", "type": "image/tiff; application=geotiff"},
            "statistics": {"value": {"mean": 0.5, "valid_pixels": 1}},
        }
    }
    files.write_bytes(f"{workspace}/outputs.json", json.dumps(manifest).encode())
    for state in (JobState.STAGING, JobState.QUEUED, JobState.RUNNING, JobState.PUBLISHING):
        services.store.transition(job.id, state)
    services.store.update(
        job.id, JobUpdate(workspace=workspace, scheduler_state="COMPLETED", exit_code=0)
    )
    return services.store.get(job.id)


def finalise(services: Services, job: Job) -> Job:
    build_worker(services).finaliser.finalise(job)
    return services.store.get(job.id)


def keys(s3: S3Endpoint, bucket: str, prefix: str = "") -> list[str]:
    listing = s3.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def workspace_bytes(job: Job, name: str) -> bytes:
    return Path(job.workspace or "", "outputs", name).read_bytes()


# -- publishing, links, checksums, STAC ---------------------------------------------


def test_outputs_are_published_to_s3_and_reachable_through_every_link(
    services: Services, s3_endpoint: S3Endpoint, bucket: str, tmp_path: Path
) -> None:
    done = finalise(services, ended_job(services, tmp_path))
    assert done.state is JobState.SUCCESSFUL, done.message
    original = workspace_bytes(done, "ndvi.tif")
    key = f"{PREFIX}/{done.id}/ndvi.tif"

    # the object: bytes, media type, checksum recorded with it
    record = done.extra["publication"]
    assert record["backend"] == "s3" and record["bucket"] == bucket
    fact = record["files"]["ndvi"]
    assert fact["key"] == key and fact["size"] == len(original) > 10 * MIB
    assert fact["sha256"] == sha256(original)
    head = s3_endpoint.client().head_object(Bucket=bucket, Key=key)
    assert head["ETag"].endswith('-3"')  # a multipart upload of three 5 MiB parts
    assert head["ContentType"] == "image/tiff; application=geotiff"
    assert head["Metadata"]["sha256"] == sha256(original)
    assert keys(s3_endpoint, bucket) == [key]
    assert not any((services.publication_root / ".s3-spool").glob("*/*"))  # spool emptied

    # results: the stable gateway link, which redirects to a fresh pre-signed URL
    href = done.results["ndvi"]["href"]  # type: ignore[index]
    base = services.settings.server.base_url
    assert href == f"{base}/jobs/{done.id}/outputs/ndvi.tif"
    assert done.results["statistics"] == {"mean": 0.5, "valid_pixels": 1}  # type: ignore[index]
    client = client_of(services)
    moved = client.get(href.removeprefix(base))
    assert moved.status_code == 302 and moved.headers["Cache-Control"] == "no-store"
    location = moved.headers["Location"]
    assert location.startswith(f"{s3_endpoint.url}/{bucket}/{key}?")
    assert parse_qs(urlsplit(location).query)["X-Amz-Expires"] == ["900"]
    downloaded = httpx.get(location, timeout=30)
    assert downloaded.status_code == 200 and downloaded.content == original
    assert sha256(downloaded.content) == fact["sha256"]

    # the STAC Item: the asset links straight to the object, checksum and size recorded
    item = client.get(f"/stac/items/{done.id}.json").get_json()
    pystac.validation.validate_dict(item)
    asset = item["assets"]["ndvi"]
    assert asset["href"].startswith(f"{s3_endpoint.url}/{bucket}/{key}?")
    assert "X-Amz-Signature=" in asset["href"] and asset["hpcgw:expires"].endswith("Z")
    assert asset["file:checksum"] == f"1220{sha256(original)}"
    assert asset["file:size"] == len(original)
    assert httpx.get(asset["href"], timeout=30).content == original
    assert item["bbox"][0] == pytest.approx(3.0, abs=0.1)  # footprint read before upload


def test_only_the_owner_is_redirected(
    services: Services, s3_endpoint: S3Endpoint, tmp_path: Path
) -> None:
    theirs = finalise(services, ended_job(services, tmp_path, owner=BOB))
    assert theirs.state is JobState.SUCCESSFUL, theirs.message
    answer = client_of(services).get(f"/jobs/{theirs.id}/outputs/ndvi.tif")
    assert answer.status_code == 404 and "Location" not in answer.headers


def test_public_base_url_links_never_expire(
    tmp_path: Path, cluster: str, s3_endpoint: S3Endpoint, bucket: str
) -> None:
    public = f"{s3_endpoint.url}/{bucket}"  # moto serves objects without signatures
    services = make_services(tmp_path, s3_endpoint, bucket, public_base_url=public)
    try:
        done = finalise(services, ended_job(services, tmp_path))
        assert done.state is JobState.SUCCESSFUL, done.message
        original = workspace_bytes(done, "ndvi.tif")
        url = f"{public}/{PREFIX}/{done.id}/ndvi.tif"
        assert done.results["ndvi"]["href"] == url  # type: ignore[index]
        assert httpx.get(url, timeout=30).content == original
        client = client_of(services)
        moved = client.get(f"/jobs/{done.id}/outputs/ndvi.tif")
        assert moved.status_code == 302 and moved.headers["Location"] == url
        asset = client.get(f"/stac/items/{done.id}.json").get_json()["assets"]["ndvi"]
        assert asset["href"] == url and "hpcgw:expires" not in asset
    finally:
        services.close()


# -- failures --------------------------------------------------------------------------


def test_missing_bucket_fails_the_job_with_a_clear_message(
    tmp_path: Path, cluster: str, s3_endpoint: S3Endpoint
) -> None:
    services = make_services(tmp_path, s3_endpoint, "no-such-bucket-here")
    try:
        done = finalise(services, ended_job(services, tmp_path))
    finally:
        services.close()
    assert done.state is JobState.FAILED
    assert done.message == (
        f"Publishing outputs failed: s3://no-such-bucket-here/{PREFIX}/{done.id}/ndvi.tif "
        f"({s3_endpoint.url}): the S3 bucket does not exist (publication.s3.bucket)"
    )
    assert done.error and done.error["detail"] == done.message
    assert Path(done.workspace or "", "outputs", "ndvi.tif").is_file()  # nothing lost


def test_missing_credentials_fail_the_job(
    tmp_path: Path,
    cluster: str,
    s3_endpoint: S3Endpoint,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    services = make_services(
        tmp_path, s3_endpoint, bucket, access_key_id_file=None, secret_access_key_file=None
    )
    try:
        done = finalise(services, ended_job(services, tmp_path))
    finally:
        services.close()
    assert done.state is JobState.FAILED
    assert done.message and done.message.startswith("Publishing outputs failed: s3://")
    assert "no S3 credentials" in done.message
    assert keys(s3_endpoint, bucket) == []


def test_unreachable_endpoint_is_retried_not_failed(
    tmp_path: Path, cluster: str, s3_endpoint: S3Endpoint, bucket: str
) -> None:
    closed = httpx.URL(s3_endpoint.url).copy_with(port=1)  # nothing listens on port 1
    services = make_services(tmp_path, s3_endpoint, bucket, endpoint_url=str(closed), retries=0)
    try:
        job = ended_job(services, tmp_path)
        done = finalise(services, job)
    finally:
        services.close()
    assert done.state is JobState.PUBLISHING and done.attempts == 1
    assert done.message and done.message.startswith("Retrying: Publishing outputs: s3://")
    assert "S3 request failed" in done.message
    assert not any((services.publication_root / ".s3-spool").glob("*/*"))


# -- dismissal and retention ---------------------------------------------------------


def test_dismissal_while_publishing_deletes_the_objects(
    services: Services, s3_endpoint: S3Endpoint, bucket: str, tmp_path: Path
) -> None:
    # the finaliser works from its snapshot while the owner dismisses the job
    job = ended_job(services, tmp_path)
    services.jobs.dismiss(ALICE, job.id)
    done = finalise(services, job)
    assert done.state is JobState.DISMISSED
    assert keys(s3_endpoint, bucket) == []

    # a worker that died after uploading: the dismissal's clean-up deletes the objects
    other = ended_job(services, tmp_path)
    manifest = json.loads(Path(other.workspace or "", "outputs.json").read_text())
    files = services.sites.adapter("dev").files(HpcIdentity("alice"))
    process = services.registry.get("ndvi")
    services.publisher.publish(other, process, manifest, files)
    assert keys(s3_endpoint, bucket) == [f"{PREFIX}/{other.id}/ndvi.tif"]
    services.jobs.dismiss(ALICE, other.id)
    build_worker(services).cleaner.run_once()
    assert keys(s3_endpoint, bucket) == []
    assert services.store.get(other.id).workspace  # record kept, workspace gone
    assert not Path(other.workspace or "").exists()


def test_dismissing_a_published_job_deletes_its_objects(
    services: Services, s3_endpoint: S3Endpoint, bucket: str, tmp_path: Path
) -> None:
    """Dismissing a successful job removes it (state ``removed``); the worker's clean-up
    then deletes its objects."""
    done = finalise(services, ended_job(services, tmp_path))
    assert done.state is JobState.SUCCESSFUL, done.message
    kept = finalise(services, ended_job(services, tmp_path))
    services.jobs.dismiss(ALICE, done.id)
    assert services.store.get(done.id).state is JobState.REMOVED
    build_worker(services).cleaner.run_once()
    assert keys(s3_endpoint, bucket) == [f"{PREFIX}/{kept.id}/ndvi.tif"]
    assert client_of(services).get(f"/jobs/{done.id}/outputs/ndvi.tif").status_code == 404


def test_dismissing_a_locally_published_job_deletes_its_folder(
    tmp_path: Path, cluster: str
) -> None:
    services = build_services(make_settings(tmp_path))  # publication.backend: local
    try:
        done = finalise(services, ended_job(services, tmp_path))
        assert done.state is JobState.SUCCESSFUL, done.message
        folder = services.publication_root / done.id
        assert (folder / "ndvi.tif").is_file() and "backend" not in done.extra["publication"]
        services.jobs.dismiss(ALICE, done.id)
        build_worker(services).cleaner.run_once()
        assert not folder.exists()
    finally:
        services.close()


def test_retention_deletes_expired_and_orphaned_objects(
    services: Services,
    s3_endpoint: S3Endpoint,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HPCGW_CONFIG", raising=False)
    done = finalise(services, ended_job(services, tmp_path))
    assert done.state is JobState.SUCCESSFUL, done.message
    s3 = s3_endpoint.client()
    orphan = str(uuid.uuid4())
    s3.put_object(Bucket=bucket, Key=f"{PREFIX}/{orphan}/x.tif", Body=b"x" * 10)
    s3.put_object(Bucket=bucket, Key=f"{PREFIX}/README.txt", Body=b"not a job")
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(services.settings.model_dump(mode="json")))
    runner = CliRunner()

    dry = runner.invoke(cli, ["cleanup", "--config", str(config), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output)["orphan_folders"] == [orphan]
    assert len(keys(s3_endpoint, bucket)) == 3

    kept = runner.invoke(cli, ["cleanup", "--config", str(config), "--older-than-days", "30"])
    assert kept.exit_code == 0, kept.output
    assert json.loads(kept.output)["expired_jobs"] == []
    # keys() is sorted; the job id is random, so it may sort before "README.txt"
    assert keys(s3_endpoint, bucket) == sorted(
        [f"{PREFIX}/README.txt", f"{PREFIX}/{done.id}/ndvi.tif"]
    )

    gone = runner.invoke(cli, ["cleanup", "--config", str(config), "--older-than-days", "1e-9"])
    assert gone.exit_code == 0, gone.output
    report = json.loads(gone.output)
    assert report["expired_jobs"] == [done.id]
    assert report["published_bytes_freed"] == done.extra["publication"]["files"]["ndvi"]["size"]
    assert keys(s3_endpoint, bucket) == [f"{PREFIX}/README.txt"]
    assert services.store.get(done.id).extra["publication"]["expired"]
    client = client_of(services)
    assert client.get(f"/jobs/{done.id}/outputs/ndvi.tif").status_code == 404
    assert client.get(f"/stac/items/{done.id}.json").status_code == 404


# -- a real job on the cluster ---------------------------------------------------------


def test_echo_job_on_the_cluster_publishes_to_s3(
    services: Services, s3_endpoint: S3Endpoint, bucket: str
) -> None:
    body = {
        "inputs": {"string_input": "published to S3"},
        "outputs": {"string_output": {"transmissionMode": "reference"}},
    }
    with worker_thread(services):
        job = services.jobs.submit(ALICE, "echo", body)
        eventually(lambda: services.store.get(job.id).final, 180, "the job to finish", every=0.3)
    done = services.store.get(job.id)
    WORKSPACES.append(done.workspace or "")
    assert done.state is JobState.SUCCESSFUL, done.message
    # the literal's own text, not a JSON string
    assert keys(s3_endpoint, bucket) == [f"{PREFIX}/{job.id}/string_output.txt"]
    client = client_of(services)
    results = client.get(f"/jobs/{job.id}/results").get_json()
    href = results["string_output"]["href"]
    moved = client.get(href.removeprefix(services.settings.server.base_url))
    assert moved.status_code == 302
    downloaded = httpx.get(moved.headers["Location"], timeout=30)
    assert downloaded.content == b"published to S3"
    assert downloaded.headers["Content-Type"] == "text/plain; charset=utf-8"
    fact = done.extra["publication"]["files"]["string_output"]
    assert fact["sha256"] == sha256(downloaded.content)
