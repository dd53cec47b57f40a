"""Failover: mesocentre's slurmctld really stops while jobs are routed to it.

Stops a shared service, so it holds ``/tmp/hpcgw-cluster.lock`` exclusively
(taken here with ``fcntl``; a caller already holding it, e.g. ``flock -x``,
sets ``HPCGW_CLUSTER_LOCK_HELD=1``) and starts the daemon again in a
``finally``. What a user would notice:

* a job running at mesocentre when it stops is followed again when it comes
  back, finishes once, and is accounted once;
* an accepted job routed to mesocentre but not yet submitted is re-routed to
  hpcgw, and its reason says so;
* a new job goes to hpcgw, its reason naming mesocentre as down;
* ``GET /status/sites`` and ``/metrics`` show mesocentre down.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from gateway.accounting import tables
from gateway.app import build_services, create_app
from gateway.jobs.states import JobState
from gateway.services import Services
from tests.clusters import HPCGW, MESOCENTRE
from tests.conftest import make_settings, require_root, worker_thread
from tests.integration.adapters import require_cluster
from tests.integration.test_two_sites import ALICE, _sites
from tests.integration.test_workflow import wait_for
from tests.polling import eventually

pytestmark = pytest.mark.slurm

LOCK = "/tmp/hpcgw-cluster.lock"
PIDFILE = "/run/slurm-dev/mesocentre/slurmctld.pid"
SLURMCTLD = str(Path(MESOCENTRE.bin_dir).parent / "sbin" / "slurmctld")


@contextlib.contextmanager
def cluster_lock() -> Iterator[None]:
    if os.environ.get("HPCGW_CLUSTER_LOCK_HELD") == "1":
        yield
        return
    with open(LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _ctld_up() -> bool:
    return "is UP" in MESOCENTRE.run("scontrol", "ping", check=False).stdout


def _start_slurmctld() -> None:
    if not _ctld_up():
        env = {**os.environ, "SLURM_CONF": MESOCENTRE.slurm_conf}
        subprocess.run([SLURMCTLD], env=env, check=False, timeout=60)
    eventually(_ctld_up, 90, "mesocentre's slurmctld to answer again", every=1)


@contextlib.contextmanager
def slurmctld_stopped() -> Iterator[None]:
    """mesocentre's slurmctld stopped for the block (its slurmd keeps running jobs)."""
    pid = int(Path(PIDFILE).read_text().strip())
    os.kill(pid, signal.SIGTERM)
    try:
        eventually(lambda: not _ctld_up(), 60, "mesocentre's slurmctld to stop", every=0.5)
        yield
    finally:
        _start_slurmctld()


@pytest.fixture
def failover_services(cluster: str, tmp_path: Path) -> Iterator[Services]:
    require_root("stops mesocentre's slurmctld and runs jobs as alice")
    require_cluster(HPCGW)
    require_cluster(MESOCENTRE)
    settings = make_settings(
        tmp_path,
        sites=_sites("slurmrest"),
        default_site="hpcgw",
        # idle clusters tie on the queue: mesocentre is cheaper, so jobs go there
        accounting={"prices": {"hpcgw": {"*": 0.05}, "mesocentre": {"*": 0.02}}},
        routing={"queue_cache_seconds": 0, "probe_seconds": 1},
    )
    services = build_services(settings)
    yield services
    services.close()


def _usage_rows(services: Services, job_id: str) -> int:
    u = tables.usage
    query = sa.select(sa.func.count()).select_from(u).where(u.c.job_id == job_id)
    with services.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def _sites_if_meso_down(client: FlaskClient) -> list[dict[str, Any]] | None:
    sites: list[dict[str, Any]] = client.get("/status/sites").get_json()["sites"]
    meso = next(s for s in sites if s["site"] == "mesocentre")
    return sites if meso["health"] and meso["health"]["up"] is False else None


def test_mesocentre_down_new_jobs_go_to_hpcgw_and_nothing_is_lost(
    failover_services: Services,
) -> None:
    services = failover_services
    client = create_app(services.settings, services).test_client()
    body = {"inputs": {"string_input": "x"}}
    with cluster_lock():
        with worker_thread(services):
            running = services.jobs.submit(
                ALICE, "echo", {"inputs": {"string_input": "long", "pause": 20}}
            )
            wait_for(services, running.id, {JobState.RUNNING})
        assert services.store.get(running.id).site == "mesocentre"
        waiting = services.jobs.submit(ALICE, "echo", body)  # accepted, not submitted
        assert services.store.get(waiting.id).site == "mesocentre"
        with slurmctld_stopped():
            new = services.jobs.submit(ALICE, "echo", body)
            with worker_thread(services):
                moved = wait_for(services, waiting.id, {JobState.SUCCESSFUL, JobState.FAILED})
                fresh = wait_for(services, new.id, {JobState.SUCCESSFUL, JobState.FAILED})
                # the prober records the outage on its own schedule (a thread, every
                # probe_seconds): jobs routed away can finish before its first round ends
                sites = eventually(
                    lambda: _sites_if_meso_down(client), 60, "/status/sites to show it down"
                )
                metrics = client.get("/metrics").get_data(as_text=True)
                assert not services.store.get(running.id).final  # followed, not given up
        with worker_thread(services):
            finished = wait_for(services, running.id, {JobState.SUCCESSFUL, JobState.FAILED})
            eventually(lambda: _usage_rows(services, running.id) == 1, 60, "its usage record")

    assert fresh.state is JobState.SUCCESSFUL, fresh.message
    assert fresh.site == "hpcgw"
    assert (fresh.routing_reason or "").startswith("only eligible site (mesocentre: down")

    assert moved.state is JobState.SUCCESSFUL, moved.message
    assert moved.site == "hpcgw"
    assert (moved.routing_reason or "").startswith("re-routed from mesocentre (down: ")
    assert HPCGW.sacct_field(moved.scheduler_job_id or "", "JobName") == f"hpcgw-{waiting.id}"

    meso = next(s for s in sites if s["site"] == "mesocentre")
    assert meso["takesJobs"] is False and meso["health"]["up"] is False
    assert 'hpcgw_site_up{site="mesocentre"} 0.0' in metrics
    assert 'hpcgw_site_up{site="hpcgw"} 1.0' in metrics

    assert finished.state is JobState.SUCCESSFUL, finished.message
    assert finished.results == {"string_output": "long"}
    slurm_id = finished.scheduler_job_id or ""
    assert MESOCENTRE.sacct_settled(slurm_id, "State", "COMPLETED") == "COMPLETED"
    named = MESOCENTRE.run("sacct", "-X", "-n", "-P", "-o", "JobName", "-S", "now-2hours").stdout
    assert named.split().count(f"hpcgw-{running.id}") == 1  # submitted once
    assert _usage_rows(services, running.id) == 1  # accounted once
