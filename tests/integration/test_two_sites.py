"""The gateway with both dev clusters configured: a job goes to ``default_site``.

Until routing exists, the site is chosen by configuration. With
``default_site: mesocentre`` an echo job submitted through the job service is
dispatched, followed and finalised on the Slurm 24.11 cluster -- over REST
(``api_version: auto`` -> v0.0.42) and over SSH (its login node on :2223) --
and shows in *that* cluster's own accounting as the user, while the 22.05
cluster never sees it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.app import build_services
from gateway.identity.auth import Principal
from gateway.jobs.states import JobState
from gateway.services import Services
from tests.clusters import HPCGW, MESOCENTRE
from tests.conftest import REPO, WORK_ROOT, make_settings, require_root, worker_thread
from tests.integration.adapters import (
    SSH_CA_KEY,
    SSH_SERVICE_USER,
    SSH_WORK_ROOT,
    require_cluster,
    ssh_known_hosts,
)
from tests.integration.test_workflow import wait_for

pytestmark = pytest.mark.slurm

ALICE = Principal(sub="sub-alice", username="alice", hpc_login="alice", roles=frozenset())


def _sites(adapter: str) -> dict[str, object]:
    def rest(url: str, key: str) -> dict[str, object]:
        return {"url": url, "jwt_key_file": key, "api_version": "auto"}

    sites: dict[str, dict[str, object]] = {
        "hpcgw": {"slurmrest": rest(HPCGW.rest_url, HPCGW.jwt_key)},
        "mesocentre": {
            "slurmrest": rest(MESOCENTRE.rest_url, MESOCENTRE.jwt_key),
            "default_partition": MESOCENTRE.partition,
        },
    }
    for site in sites.values():
        site.update(adapter=adapter, workspace_root=str(WORK_ROOT), pythonpath=str(REPO))
    if adapter == "ssh":
        ssh = {
            "host": "127.0.0.1",
            "port": MESOCENTRE.ssh_port,
            "known_hosts_file": ssh_known_hosts("127.0.0.1", MESOCENTRE.ssh_port),
            "ca_key_file": SSH_CA_KEY,
            "service_user": SSH_SERVICE_USER,
        }
        sites["mesocentre"].update(ssh=ssh, workspace_root=SSH_WORK_ROOT)
    return dict(sites)


@pytest.fixture(params=["slurmrest", "ssh"])
def meso_services(
    request: pytest.FixtureRequest, cluster: str, tmp_path: Path
) -> Iterator[Services]:
    require_root("jobs run as alice in root-made workspaces")
    require_cluster(MESOCENTRE)
    if request.param == "ssh":
        os.makedirs(SSH_WORK_ROOT, exist_ok=True)
        os.chmod(SSH_WORK_ROOT, 0o1777)
    settings = make_settings(tmp_path, sites=_sites(request.param), default_site="mesocentre")
    services = build_services(settings)
    yield services
    services.close()


def test_a_job_for_the_default_site_runs_on_the_24_11_cluster_as_the_user(
    meso_services: Services,
) -> None:
    with worker_thread(meso_services):
        job = meso_services.jobs.submit(ALICE, "echo", {"inputs": {"string_input": "meso"}})
        done = wait_for(meso_services, job.id, {JobState.SUCCESSFUL, JobState.FAILED})
    assert done.state is JobState.SUCCESSFUL, done.message
    assert done.results == {"string_output": "meso"}
    assert done.site == "mesocentre"
    slurm_id = done.scheduler_job_id or ""
    assert MESOCENTRE.sacct_field(slurm_id, "User") == "alice"
    assert MESOCENTRE.sacct_field(slurm_id, "JobName") == f"hpcgw-{job.id}"
    assert MESOCENTRE.sacct_field(slurm_id, "Partition") == "short"
    # the 22.05 cluster has no job of that name (ids collide across clusters, names do not)
    assert f"hpcgw-{job.id}" not in HPCGW.run("sacct", "-X", "-n", "-P", "-o", "JobName").stdout
