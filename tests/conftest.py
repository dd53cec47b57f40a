"""Shared fixtures: the real dev cluster, per-test gateway settings and services.

Tests marked ``slurm`` or ``e2e`` need the dev cluster started by
``deploy/devcluster.sh``. When it is down they are skipped -- unless
``HPCGW_REQUIRE_CLUSTER=1`` (set by ``make test`` and CI), where a missing
cluster is an error, so real-Slurm tests can never be silently skipped there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from gateway.app import build_services, build_worker
from gateway.services import Services
from gateway.settings import Settings
from gateway.workflow.worker import Worker

SLURMRESTD = os.environ.get("SLURMRESTD_URL", "http://127.0.0.1:6820")
JWT_KEY = os.environ.get("SLURM_JWT_KEY", "/etc/slurm/jwt_hs256.key")
WORK_ROOT = Path(os.environ.get("HPCGW_TEST_WORK", "/var/lib/hpcgw/test-work"))
REPO = Path(__file__).resolve().parent.parent


def _cluster_problem() -> str | None:
    if not Path(JWT_KEY).exists():
        return f"no Slurm JWT key at {JWT_KEY}"
    if shutil.which("sbatch") is None:
        return "Slurm client tools are not installed"
    try:
        httpx.get(f"{SLURMRESTD}/openapi/v3", timeout=3)
    except httpx.HTTPError as exc:
        return f"slurmrestd not reachable at {SLURMRESTD}: {exc}"
    return None


@pytest.fixture(scope="session")
def cluster() -> str:
    """The slurmrestd URL of a running dev cluster (skip or fail when it is down)."""
    problem = _cluster_problem()
    if problem:
        if os.environ.get("HPCGW_REQUIRE_CLUSTER") == "1":
            pytest.fail(f"dev cluster required but unavailable: {problem}")
        pytest.skip(f"dev cluster unavailable: {problem}")
    WORK_ROOT.mkdir(parents=True, exist_ok=True, mode=0o755)
    return SLURMRESTD


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Gateway settings for one test: its own SQLite file and publication folder."""
    data: dict[str, object] = {
        "database": {"url": f"sqlite:///{tmp_path}/hpcgw.db"},
        "server": {"base_url": "http://127.0.0.1:5000", "sync_timeout_seconds": 60},
        "sites": {
            "dev": {
                "adapter": "slurmrest",
                "slurmrest": {"url": SLURMRESTD, "jwt_key_file": JWT_KEY},
                "workspace_root": str(WORK_ROOT),
                "pythonpath": str(REPO),
            }
        },
        "worker": {"poll_interval_seconds": 0.3, "backoff_base_seconds": 0.5},
        "publication": {"root": str(tmp_path / "published")},
        # test servers (HTTP, S3, callback receivers) listen on loopback: allow-list it
        "workflow": {
            "egress": {"allow_cidrs": ["127.0.0.1/32"]},
            "cache": {"root": str(tmp_path / "cache")},
        },
    }
    data.update(overrides)
    return Settings(**data)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    svc = build_services(settings)
    yield svc
    svc.close()


def sacct_field(job_id: str, field: str) -> str:
    """One accounting field of a Slurm job, straight from ``sacct``."""
    out = subprocess.run(
        ["sacct", "-j", job_id, "-X", "-n", "-P", "-o", field],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def squeue_ids() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def new_id() -> str:
    return str(uuid.uuid4())


def sacct_settled(job_id: str, field: str, expected: str, timeout: float = 30) -> str:
    """Poll ``sacct`` until ``field`` reads ``expected`` (slurmdbd lags the controller)."""
    import time

    deadline = time.monotonic() + timeout
    value = sacct_field(job_id, field)
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.5)
        value = sacct_field(job_id, field)
    return value


@contextmanager
def worker_thread(services: Services) -> Iterator[Worker]:
    """A real gateway worker running in a thread for the duration of the block."""
    worker = build_worker(services)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        stop.set()
        thread.join(timeout=10)


@pytest.fixture
def running_worker(cluster: str, services: Services) -> Iterator[Worker]:
    """The worker of the ``services`` fixture, running against the real cluster."""
    with worker_thread(services) as worker:
        yield worker
