"""Shared fixtures: the real dev cluster, per-test gateway settings and services.

Every test carries exactly one tier marker of :data:`TIERS` (a module's
``pytestmark``); collection fails on a test without one, so ``make unit`` and
``-m slurm`` select every test they should.

Tests marked ``slurm`` or ``e2e`` need the dev cluster started by
``deploy/devcluster.sh``. When it is down they are skipped -- unless
``HPCGW_REQUIRE_CLUSTER=1`` (set by ``make test`` and CI), where a missing
cluster is an error, so real-Slurm tests can never be silently skipped there.
The same holds for tests marked ``needs_root`` run by another user.

Waiting is done with :func:`tests.polling.eventually`; the ``settings`` and
``services`` fixtures (built by :func:`make_settings`) are the only ones.
"""

from __future__ import annotations

import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gateway.app import build_services, build_worker
from gateway.services import Services
from gateway.settings import Settings
from gateway.workflow.worker import Worker
from tests.clusters import HPCGW, DevCluster, cluster_problem
from tests.polling import eventually

#: The test tiers (pytest markers, see pyproject.toml); every test has one.
TIERS = ("unit", "integration", "slurm", "e2e", "postgres")
REQUIRE_CLUSTER = os.environ.get("HPCGW_REQUIRE_CLUSTER") == "1"

SLURMRESTD = os.environ.get("SLURMRESTD_URL", "http://127.0.0.1:6820")
JWT_KEY = os.environ.get("SLURM_JWT_KEY", "/etc/slurm/jwt_hs256.key")
WORK_ROOT = Path(os.environ.get("HPCGW_TEST_WORK", "/var/lib/hpcgw/test-work"))
REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse a test without a tier marker (it would escape ``-m unit`` / ``-m slurm``)."""
    untiered = [i.nodeid for i in items if not any(i.get_closest_marker(t) for t in TIERS)]
    if untiered:
        listed = "\n  ".join(untiered[:20])
        raise pytest.UsageError(f"tests without a tier marker {TIERS}:\n  {listed}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``needs_root`` tests: skipped for other users, failed when the suite requires them."""
    marker = item.get_closest_marker("needs_root")
    if marker is None or os.geteuid() == 0:
        return
    why = marker.args[0] if marker.args else "needs root"
    if REQUIRE_CLUSTER:
        pytest.fail(f"{why}: make test requires it, run the suite as root", pytrace=False)
    pytest.skip(why)


def require_root(why: str) -> None:
    """Inside a test or fixture: the same rule as the ``needs_root`` marker."""
    if os.geteuid() == 0:
        return
    if REQUIRE_CLUSTER:
        pytest.fail(f"{why}: make test requires it, run the suite as root", pytrace=False)
    pytest.skip(why)


def require_cluster(dev: DevCluster) -> None:
    """Fail (under ``HPCGW_REQUIRE_CLUSTER=1``) or skip when the dev cluster ``dev`` is down."""
    problem = cluster_problem(dev)
    if problem:
        if REQUIRE_CLUSTER:
            pytest.fail(f"dev cluster required but unavailable: {problem}")
        pytest.skip(f"dev cluster unavailable: {problem}")


@pytest.fixture(scope="session")
def cluster() -> str:
    """The slurmrestd URL of the running hpcgw dev cluster (skip or fail when it is down)."""
    require_cluster(HPCGW)
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
def settings_overrides() -> dict[str, object]:
    """Sections of :func:`make_settings` a test module replaces.

    A module that needs other settings overrides *this* fixture (data), never
    ``settings`` or ``services``, so every test gets its services the same way.
    """
    return {}


@pytest.fixture
def settings(tmp_path: Path, settings_overrides: dict[str, object]) -> Settings:
    """This test's gateway settings: :func:`make_settings` plus the module's overrides."""
    return make_settings(tmp_path, **settings_overrides)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    """The gateway's parts built by the composition root from ``settings``."""
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
    """Poll ``sacct`` until ``field`` reads ``expected`` (slurmdbd lags the controller).

    Returns the last value read, ``expected`` or not: callers assert on it.
    """
    seen: list[str] = []

    def settled() -> bool:
        seen.append(sacct_field(job_id, field))
        return seen[-1] == expected

    try:
        eventually(settled, timeout, f"sacct {field} of {job_id} to read {expected!r}", every=0.5)
    except pytest.fail.Exception:
        pass  # the caller's assertion shows the value that was read
    return seen[-1]


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
