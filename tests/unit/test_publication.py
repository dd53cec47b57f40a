"""Publication settings, S3 object naming and links, and how S3 errors read to a user."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from pydantic import ValidationError

from gateway.jobs.records import Job, Owner
from gateway.jobs.states import JobState
from gateway.publication.publisher import Publisher, build_publisher
from gateway.publication.s3 import S3Outputs, _translate
from gateway.settings import Settings
from gateway.settings_workflow import PublicationSettings, S3PublicationSettings

pytestmark = pytest.mark.unit

JOB_ID = "3f1c1d52-8d4e-4a43-9d0c-0e6f4c1b2a10"
WHERE = "s3://b/k (http://s3.test)"


def job(extra: dict[str, Any]) -> Job:
    now = datetime.now(UTC)
    return Job(
        id=JOB_ID,
        process_id="ndvi",
        process_version="1.0.0",
        state=JobState.SUCCESSFUL,
        owner=Owner("s", "alice", "alice"),
        site="dev",
        interface="ogcapi",
        inputs={},
        outputs_request=None,
        response="document",
        created=now,
        updated=now,
        extra=extra,
    )


def s3_record(**extra: Any) -> dict[str, Any]:
    fact = {"file": "ndvi.tif", "key": f"out/{JOB_ID}/ndvi.tif", "sha256": "ab", "size": 2}
    return {"publication": {"backend": "s3", "bucket": "old-bucket", "files": {"ndvi": fact}}}


# -- settings ------------------------------------------------------------------------


def test_local_is_the_default_backend() -> None:
    settings = Settings()
    assert settings.publication.backend == "local"
    assert build_publisher(settings.publication, "http://gw").s3 is None


def test_s3_backend_needs_a_valid_bucket() -> None:
    with pytest.raises(ValidationError, match=r"publication\.s3\.bucket is required"):
        PublicationSettings(backend="s3")
    with pytest.raises(ValidationError, match="not a valid S3 bucket name"):
        S3PublicationSettings(bucket="Bad_Bucket")


@pytest.mark.parametrize(
    ("given", "kept"), [("/a//b/", "a/b"), ("", ""), ("hpcgw/outputs", "hpcgw/outputs")]
)
def test_prefix_is_normalised(given: str, kept: str) -> None:
    assert S3PublicationSettings(bucket="bkt", prefix=given).prefix == kept


@pytest.mark.parametrize("prefix", ["a/../b", "a/.hidden", "a b"])
def test_odd_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValidationError, match="prefix: segment"):
        S3PublicationSettings(bucket="bkt", prefix=prefix)


def test_public_base_url_must_be_http() -> None:
    with pytest.raises(ValidationError, match="must be an http"):
        S3PublicationSettings(bucket="bkt", public_base_url="ftp://x")
    kept = S3PublicationSettings(bucket="bkt", public_base_url="https://cdn.example.org/o/")
    assert kept.public_base_url == "https://cdn.example.org/o"


def test_backend_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPCGW_PUBLICATION__BACKEND", "s3")
    monkeypatch.setenv("HPCGW_PUBLICATION__S3__BUCKET", "gw-results")
    monkeypatch.setenv("HPCGW_PUBLICATION__S3__PRESIGN_EXPIRY_SECONDS", "600")
    publication = Settings().publication
    assert publication.backend == "s3" and publication.s3.bucket == "gw-results"
    publisher = build_publisher(publication, "http://gw")
    assert publisher.upload and publisher.s3 is not None
    assert publisher.s3.key(JOB_ID, "x.tif") == f"hpcgw/outputs/{JOB_ID}/x.tif"


# -- naming and links ----------------------------------------------------------------


def test_keys_without_prefix_and_public_links_are_quoted() -> None:
    outputs = S3Outputs(
        S3PublicationSettings(bucket="bkt", prefix="", public_base_url="https://cdn.test/")
    )
    assert outputs.job_prefix(JOB_ID) == f"{JOB_ID}/"
    link = outputs.link(f"{JOB_ID}/a b.tif")
    assert link.href == f"https://cdn.test/{JOB_ID}/a%20b.tif" and link.expires is None


def test_public_links_are_only_for_the_configured_bucket(tmp_path: Path) -> None:
    """An object in another bucket (published before a change of bucket) is pre-signed
    (locally: signing needs the credentials, not the endpoint)."""
    (tmp_path / "key").write_text("AKIDEXAMPLE\n")
    (tmp_path / "secret").write_text("secret\n")
    settings = S3PublicationSettings(
        access_key_id_file=str(tmp_path / "key"),
        secret_access_key_file=str(tmp_path / "secret"),
        bucket="new-bucket",
        public_base_url="https://cdn.test",
        endpoint_url="http://s3.test",
        presign_expiry_seconds=120,
    )
    publisher = Publisher(Path("/nonexistent"), "http://gw", S3Outputs(settings), upload=True)
    located = publisher.asset_link(job(s3_record()), "ndvi")
    assert located is not None
    href, expires = located
    assert href.startswith(f"http://s3.test/old-bucket/out/{JOB_ID}/ndvi.tif?")
    assert "X-Amz-Expires=120" in href and "AKIDEXAMPLE" in href and expires is not None


def test_links_only_for_live_s3_records() -> None:
    publisher = build_publisher(
        PublicationSettings(backend="s3", s3={"bucket": "bkt"}),  # type: ignore[arg-type]
        "http://gw",
    )
    local = {"publication": {"files": {"ndvi": {"file": "ndvi.tif"}}}}
    assert publisher.location(job(local), "ndvi.tif") is None
    expired = s3_record()
    expired["publication"]["expired"] = "2026-01-01T00:00:00+00:00"
    assert publisher.location(job(expired), "ndvi.tif") is None
    assert publisher.location(job(s3_record()), "other.tif") is None


# -- errors --------------------------------------------------------------------------


def client_error(code: str, status: int) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "PutObject")


@pytest.mark.parametrize(
    ("exc", "transient", "says"),
    [
        (client_error("NoSuchBucket", 404), False, "the S3 bucket does not exist"),
        (client_error("AccessDenied", 403), False, "S3 denied access (AccessDenied"),
        (client_error("InvalidAccessKeyId", 403), False, "check publication.s3 credentials"),
        (client_error("SlowDown", 503), True, "S3 answered SlowDown: m"),
        (client_error("InternalError", 500), True, "S3 answered InternalError"),
        (client_error("EntityTooLarge", 400), False, "S3 answered EntityTooLarge"),
        (NoCredentialsError(), False, "no S3 credentials"),
        (EndpointConnectionError(endpoint_url="http://s3.test"), True, "S3 request failed"),
    ],
)
def test_s3_errors_name_the_object_and_the_cause(exc: Any, transient: bool, says: str) -> None:
    error = _translate(exc, WHERE)
    assert error.transient is transient
    assert error.detail.startswith(f"{WHERE}: ") and says in error.detail
