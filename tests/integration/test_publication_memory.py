"""A large output is uploaded to S3 with bounded memory (measured in a fresh process).

The upload goes through :class:`S3Outputs` (boto3's managed multipart transfer)
to moto's S3 server on loopback. The uploading process resets its peak RSS
(``/proc/self/clear_refs``) after a warm-up upload and reports the peak reached
by the big one; the growth must stay far below the file size.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.workflow_fixtures import S3Endpoint

pytestmark = pytest.mark.integration

SIZE = 256 << 20
MAX_RSS_GROWTH_MIB = 64

SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from gateway.settings_workflow import S3PublicationSettings
    from gateway.publication.s3 import S3Outputs

    url, key_file, secret_file, bucket, path, sha256 = sys.argv[1:7]
    settings = S3PublicationSettings(
        bucket=bucket, endpoint_url=url, access_key_id_file=key_file,
        secret_access_key_file=secret_file, multipart_chunk_bytes=8 * 2**20,
        multipart_threshold_bytes=8 * 2**20, max_concurrency=4,
    )
    outputs = S3Outputs(settings)
    outputs.upload(Path(path + ".small"), "big/small.tif", "image/tiff", sha256)  # warm-up

    def status(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])

    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # resets the peak (VmHWM) to the current resident size
    before = status("VmHWM")
    started = time.monotonic()
    outputs.upload(Path(path), "big/out.tif", "image/tiff", sha256)
    elapsed = time.monotonic() - started
    after = status("VmHWM")
    print(json.dumps({"before_kib": before, "after_kib": after, "seconds": elapsed}))
    """
)


@pytest.mark.timeout(600)
def test_large_output_uploaded_with_bounded_memory(tmp_path: Path, s3_endpoint: S3Endpoint) -> None:
    bucket = f"big-{uuid.uuid4().hex[:12]}"
    s3 = s3_endpoint.client()
    s3.create_bucket(Bucket=bucket)
    path = tmp_path / "out.tif"
    block = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB, not all zeros
    digest = hashlib.sha256()
    (tmp_path / "out.tif.small").write_bytes(block)
    with open(path, "wb") as fh:
        for _ in range(SIZE >> 20):
            fh.write(block)
            digest.update(block)
    args = [s3_endpoint.url, str(s3_endpoint.key_file), str(s3_endpoint.secret_file), bucket]
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args, str(path), digest.hexdigest()],
        capture_output=True,
        text=True,
        timeout=540,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    growth_mib = (report["after_kib"] - report["before_kib"]) / 1024
    print(
        f"\n{SIZE >> 20} MiB uploaded in {report['seconds']:.1f}s; peak RSS "
        f"{report['before_kib'] / 1024:.0f} -> {report['after_kib'] / 1024:.0f} MiB "
        f"(growth {growth_mib:.1f} MiB)"
    )
    head = s3.head_object(Bucket=bucket, Key="big/out.tif")
    assert head["ContentLength"] == SIZE
    assert head["ETag"].endswith(f'-{SIZE // (8 << 20)}"')  # multipart: one part per 8 MiB
    assert head["Metadata"]["sha256"] == digest.hexdigest()
    assert growth_mib < MAX_RSS_GROWTH_MIB
    s3.delete_object(Bucket=bucket, Key="big/out.tif")
