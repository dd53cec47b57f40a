"""``hpcgw doctor`` on an S3 publication store (moto's S3 server): writable, or why not."""

from __future__ import annotations

import pytest

from gateway.doctor import check_s3
from gateway.settings_workflow import S3PublicationSettings
from tests.integration.test_publication_s3 import new_bucket, s3_settings
from tests.workflow_fixtures import S3Endpoint

pytestmark = pytest.mark.integration


def test_a_writable_bucket_passes_and_keeps_nothing(s3_endpoint: S3Endpoint) -> None:
    bucket = new_bucket(s3_endpoint)
    finding = check_s3(S3PublicationSettings(**s3_settings(s3_endpoint, bucket)))
    assert finding.ok, finding.detail
    assert finding.detail.startswith(f"s3://{bucket}/gw/out/") and "writable" in finding.detail
    assert s3_endpoint.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_a_missing_bucket_is_named_with_what_to_check(s3_endpoint: S3Endpoint) -> None:
    missing = check_s3(S3PublicationSettings(**s3_settings(s3_endpoint, "no-such-bucket")))
    assert not missing.ok
    assert "s3://no-such-bucket/" in missing.detail and "NoSuchBucket" in missing.detail
    assert "check publication.s3" in missing.detail
