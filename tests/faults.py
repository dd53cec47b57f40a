"""Service faults made on request, for the fault tests (``tests/integration/test_*_faults.py``).

One home for stopping and starting the dev clusters' daemons: every stop and
start goes through ``deploy/devcluster.sh daemon stop|start NAME [CLUSTER]``,
so pid files, ports and "is it up yet" waits stay that script's business.
:func:`stopped` starts the daemon again however the block ends, so the suite
after a fault test finds every service up (CI runs the whole suite serially).
By hand, run a fault test alone: ``flock -x /tmp/hpcgw-cluster.lock pytest ...``.

Also here: the gateway settings of one dev cluster's site, a small filesystem
that a test can fill (:func:`small_filesystem`), and a scratch PostgreSQL
database (:func:`scratch_database`).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.app import build_services
from gateway.services import Services
from tests.clusters import DevCluster
from tests.conftest import REPO, WORK_ROOT, make_settings, require_cluster, require_root
from tests.integration.test_store_postgres import PG_URL

DEVCLUSTER = REPO / "deploy" / "devcluster.sh"


def daemon(action: str, name: str, cluster: str = "mesocentre") -> None:
    """``devcluster.sh daemon ACTION NAME CLUSTER``; fails the test with its output."""
    done = subprocess.run(
        ["bash", str(DEVCLUSTER), "daemon", action, name, cluster],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if done.returncode != 0:
        pytest.fail(f"devcluster.sh daemon {action} {name} {cluster}: {done.stderr or done.stdout}")


@contextmanager
def stopped(name: str, cluster: str = "mesocentre") -> Iterator[None]:
    """``name`` of ``cluster`` is down for the block, and started again after it."""
    require_root(f"stopping {name} needs root")
    daemon("stop", name, cluster)
    try:
        yield
    finally:
        daemon("start", name, cluster)


def rest_site(dev: DevCluster, **extra: object) -> dict[str, object]:
    """The gateway's site settings for ``dev`` over slurmrestd (``api_version: auto``)."""
    return {
        "adapter": "slurmrest",
        "slurmrest": {"url": dev.rest_url, "jwt_key_file": dev.jwt_key, "api_version": "auto"},
        "workspace_root": str(WORK_ROOT),
        "pythonpath": str(REPO),
        "default_partition": dev.partition,
        **extra,
    }


@contextmanager
def site_services(tmp_path: Path, dev: DevCluster, **overrides: object) -> Iterator[Services]:
    """Gateway services whose only (default) site is ``dev``, over slurmrestd."""
    require_root("jobs run as alice in root-made workspaces")
    require_cluster(dev)
    WORK_ROOT.mkdir(parents=True, exist_ok=True, mode=0o755)
    overrides.setdefault("sites", {dev.name: rest_site(dev)})
    settings = make_settings(tmp_path, default_site=dev.name, **overrides)
    services = build_services(settings)
    try:
        yield services
    finally:
        services.close()


def slurm_jobs_named(dev: DevCluster, name: str) -> list[str]:
    """Ids of every Slurm job named ``name`` in ``dev``'s accounting (the last hour)."""
    out = dev.run("sacct", "-X", "-n", "-P", "-S", "now-1hours", "--name", name, "-o", "JobID")
    return out.stdout.split()


@contextmanager
def small_filesystem(path: Path, size: str = "256k") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``path`` for the block (a disk that fills up)."""
    require_root("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
        path.rmdir()


def fill(folder: Path) -> Path:
    """Write a file in ``folder`` until its filesystem is full; the file (to delete)."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


@contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the block; its URL. Dropped afterwards."""
    admin = sa.create_engine(PG_URL, pool_pre_ping=True)  # survives a PostgreSQL restart
    name = f"fault_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL required but unavailable: {exc}")
    try:
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
