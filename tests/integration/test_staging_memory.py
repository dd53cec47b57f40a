"""A 1 GiB input is staged with bounded memory (measured in a fresh process).

The file is sparse on the serving side (cheap to create) and travels the
whole production path: loopback HTTP server -> guarded client -> hashing
sink -> content-addressed cache -> LocalWorkspace. The staging process
reports its peak RSS before and after; the growth must stay far below the
input size.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.workflow_fixtures import FileServer

pytestmark = pytest.mark.integration

SIZE = 1 << 30
MAX_RSS_GROWTH_MIB = 64

SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, time
    from gateway.egress import EgressPolicy
    from gateway.settings_workflow import WorkflowSettings
    from gateway.staging import build_stager
    from hpc_adapters.base import HpcIdentity
    from hpc_adapters.localfs import LocalWorkspace

    href, cache_root, work_root, login = sys.argv[1:5]
    settings = WorkflowSettings(
        cache={"root": cache_root, "max_bytes": 2 * 1024**3},
        staging={"read_timeout_seconds": 30},
    )
    stager = build_stager(settings, EgressPolicy(allow_cidrs=["127.0.0.1/32"]))
    files = LocalWorkspace(work_root, HpcIdentity(login))
    files.mkdir(work_root + "/job")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    staged = stager.stage({"image": {"href": href}}, files, work_root + "/job")
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_kib": before, "after_kib": after, "seconds": elapsed,
                      "staged": staged["image"]}))
    """
)


def _zeros_sha256(size: int) -> str:
    digest = hashlib.sha256()
    block = bytes(1 << 20)
    for _ in range(size >> 20):
        digest.update(block)
    return digest.hexdigest()


@pytest.mark.timeout(600)
def test_one_gib_input_staged_with_bounded_memory(tmp_path: Path, file_server: FileServer) -> None:
    with open(file_server.root / "big.tif", "wb") as fh:
        fh.truncate(SIZE)  # sparse: no disk used on the serving side
    work = tmp_path / "work"
    work.mkdir(mode=0o755)
    login = "alice" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                SCRIPT,
                file_server.href("big.tif"),
                str(tmp_path / "cache"),
                str(work),
                login,
            ],
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
            f"\n1 GiB staged in {report['seconds']:.1f}s; peak RSS "
            f"{report['before_kib'] / 1024:.0f} -> {report['after_kib'] / 1024:.0f} MiB "
            f"(growth {growth_mib:.1f} MiB)"
        )
        assert report["staged"]["size"] == SIZE
        assert report["staged"]["sha256"] == _zeros_sha256(SIZE)
        assert (work / "job" / "inputs" / "image.tif").stat().st_size == SIZE
        assert growth_mib < MAX_RSS_GROWTH_MIB
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(tmp_path / "cache", ignore_errors=True)
