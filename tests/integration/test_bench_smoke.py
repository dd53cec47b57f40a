"""The benchmark suite still runs: two of its phases at smoke size (< 60 s) on the real cluster.

Not a performance gate (numbers are not checked against targets); it keeps
``bench/`` from rotting as the gateway changes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import require_root

pytestmark = pytest.mark.slurm


@pytest.mark.timeout(120)
def test_bench_smoke_monitor_and_staging(cluster: str, tmp_path: Path) -> None:
    require_root("the benchmark resets slurmctld statistics (sdiag -r)")
    from bench.run import main

    main(
        [
            "--size",
            "smoke",
            "--phases",
            "monitor,staging",
            "--out",
            str(tmp_path),
            "--work-root",
            str(tmp_path / "work"),
        ]
    )

    report = json.loads((tmp_path / "bench-smoke.json").read_text())
    monitor = report["phases"]["monitor"]
    assert "error" not in monitor, monitor.get("traceback")
    level = monitor["levels"][0]
    assert level["jobs_seen_by_monitor"] == level["active_jobs"] == 10
    assert level["rpcs_per_cycle_service_user"] >= 1
    staging = report["phases"]["staging"]
    assert "error" not in staging, staging.get("traceback")
    assert staging["stage_seconds"] > 0 and staging["curl_seconds"] > 0
    assert report["cleanup"] is not None
    table = (tmp_path / "bench-smoke.md").read_text()
    assert "RPCs per monitoring cycle" in table and "curl" in table
