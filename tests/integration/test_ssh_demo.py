"""The demo's echo job through the SSH adapter: ``deploy/config/demo-ssh.yaml`` end to end.

The services are built from the demo-ssh file (only the database, publication
folder, known_hosts and workspace root are pointed at per-test places), the
gateway's own worker runs the job, and ``sacct`` shows it ran as alice. Also:
the gateway retries a job while the login node is unreachable (transient) and
fails it when sshd refuses the user (permanent).
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.app import build_services, build_worker
from gateway.errors import ServiceUnavailable
from gateway.identity.auth import Principal
from gateway.jobs.records import Job, JobQuery
from gateway.jobs.states import JobState
from gateway.services import Services
from gateway.settings import Settings, read_yaml
from hpc_adapters.ssh import SshAdapter
from tests.conftest import REPO, require_root, sacct_field
from tests.integration.adapters import SSH_WORK_ROOT, ssh_known_hosts
from tests.polling import eventually

DEMO = REPO / "deploy" / "config" / "demo.yaml"
DEMO_SSH = REPO / "deploy" / "config" / "demo-ssh.yaml"
ALICE = Principal(sub="sub-alice", username="alice", hpc_login="alice", roles=frozenset())


@pytest.mark.unit
def test_demo_ssh_differs_from_demo_only_in_the_adapter() -> None:
    plain, ssh = read_yaml(DEMO), read_yaml(DEMO_SSH)
    for name, port in (("hpcgw", 2222), ("mesocentre", 2223)):  # each site's login node
        site = ssh["sites"][name]
        assert site.pop("adapter") == "ssh" and plain["sites"][name].pop("adapter") == "slurmrest"
        assert site.pop("ssh")["port"] == port
    assert ssh == plain


def demo_ssh_settings(
    tmp_path: Path, settings: dict[str, Any] | None = None, **site_ssh: Any
) -> Settings:
    data = read_yaml(DEMO_SSH)
    data["database"] = {"url": f"sqlite:///{tmp_path}/hpcgw.db"}
    data["publication"] = {"root": str(tmp_path / "published")}
    data["worker"] = {"poll_interval_seconds": 0.3, "backoff_base_seconds": 0.5}
    for name, site in data["sites"].items():
        site["ssh"]["known_hosts_file"] = ssh_known_hosts()
        if name == "hpcgw":
            site["ssh"].update(site_ssh)
        site["workspace_root"] = SSH_WORK_ROOT
        site["pythonpath"] = str(REPO)
    data.update(settings or {})
    return Settings(**data)


@pytest.fixture
def ssh_services(cluster: str, tmp_path: Path) -> Iterator[Services]:
    require_root("signing certificates needs the dev CA key (root only)")
    os.makedirs(SSH_WORK_ROOT, exist_ok=True)
    os.chmod(SSH_WORK_ROOT, 0o1777)
    services = build_services(demo_ssh_settings(tmp_path))
    yield services
    services.close()


def run_until(services: Services, job_id: str, done: set[JobState], timeout: float) -> Job:
    worker = build_worker(services)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,), daemon=True)
    thread.start()
    try:
        return eventually(
            lambda: (job := services.store.get(job_id)).state in done and job,
            timeout,
            lambda: f"job {job_id} to reach {sorted(done)}: {services.store.get(job_id).message}",
        )
    finally:
        stop.set()
        thread.join(timeout=10)


@pytest.mark.slurm
def test_demo_echo_job_runs_through_the_ssh_adapter(ssh_services: Services) -> None:
    adapter = ssh_services.sites.adapter("hpcgw")
    adapter = getattr(adapter, "inner", adapter)  # unwrap the accounting proxy
    assert isinstance(adapter, SshAdapter)
    body = {"inputs": {"string_input": "hello over ssh", "integer_input": 7}}
    job = ssh_services.jobs.submit(ALICE, "echo", body)
    done = run_until(ssh_services, job.id, {JobState.SUCCESSFUL, JobState.FAILED}, 120)
    assert done.state is JobState.SUCCESSFUL, done.message
    assert done.results == {"string_output": "hello over ssh", "integer_output": 7}
    assert done.scheduler_job_id and sacct_field(done.scheduler_job_id, "User") == "alice"
    alice = pwd.getpwnam("alice").pw_uid
    workspace = Path(done.workspace or "")
    assert workspace.stat().st_uid == alice
    assert (workspace / "inputs.json").stat().st_uid == alice
    assert (workspace / "outputs.json").stat().st_uid == alice
    # One connection for alice (submit + files) and one for the monitor.
    assert adapter.pool.stats.connects == 2, adapter.pool.stats


@pytest.mark.slurm
def test_unreachable_login_node_is_retried_not_failed(cluster: str, tmp_path: Path) -> None:
    """A login node that stops answering after the job was accepted: the submission is
    retried, the job never failed. (hpcgw is the only site here: with two, routing reads
    each site's queue at acceptance and answers 503 for a site it cannot reach.)"""
    settings = demo_ssh_settings(tmp_path, port=1)
    settings.sites = {"hpcgw": settings.sites["hpcgw"]}
    settings.default_site = "hpcgw"
    services = build_services(settings)
    try:
        job = services.jobs.submit(ALICE, "echo", {"inputs": {"string_input": "x"}})
        build_worker(services).run_once()
        again = services.store.get(job.id)
        assert again.state in (JobState.ACCEPTED, JobState.STAGING)
        assert again.attempts == 1 and "Retrying" in (again.message or "")
    finally:
        services.close()


@pytest.mark.slurm
def test_login_refused_by_sshd_fails_the_job(cluster: str, tmp_path: Path) -> None:
    """A login sshd refuses fails the job at once. (Routing's association check, which
    would refuse this user before a job exists, is off here to reach the sshd.)"""
    require_root("signing certificates needs the dev CA key (root only)")
    settings = demo_ssh_settings(tmp_path, {"routing": {"check_associations": False}})
    services = build_services(settings)
    try:
        stranger = Principal(sub="s", username="nosuchuser", hpc_login="nosuchuser")
        job = services.jobs.submit(stranger, "echo", {"inputs": {"string_input": "x"}})
        done = run_until(services, job.id, {JobState.FAILED}, 30)
        assert "refused the SSH credential of 'nosuchuser'" in (done.message or "")
        assert done.attempts == 0
    finally:
        services.close()


@pytest.mark.slurm
def test_a_user_without_an_association_is_refused_before_a_job_exists(
    ssh_services: Services,
) -> None:
    stranger = Principal(sub="s", username="nosuchuser", hpc_login="nosuchuser")
    with pytest.raises(ServiceUnavailable) as refused:
        ssh_services.jobs.submit(stranger, "echo", {"inputs": {"string_input": "x"}})
    assert "no Slurm association for 'nosuchuser'" in str(refused.value)
    assert ssh_services.store.page(JobQuery(owner_sub="s")).jobs == []


@pytest.mark.slurm
def test_killing_the_ssh_connections_mid_run_does_not_lose_the_job(
    ssh_services: Services,
) -> None:
    adapter = getattr(ssh_services.sites.adapter("hpcgw"), "inner", None)
    assert isinstance(adapter, SshAdapter)
    job = ssh_services.jobs.submit(ALICE, "echo", {"inputs": {"string_input": "x", "pause": 6}})
    worker = build_worker(ssh_services)

    def running() -> bool:
        if ssh_services.store.get(job.id).state is JobState.RUNNING:
            return True
        worker.run_once()
        return False

    eventually(running, 60, lambda: f"the job to run: {ssh_services.store.get(job.id).message}")
    for login in ("alice", adapter.service_user):
        transport = adapter.pool.transport_of(login)
        assert transport is not None
        transport.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
    done = run_until(ssh_services, job.id, {JobState.SUCCESSFUL, JobState.FAILED}, 90)
    assert done.state is JobState.SUCCESSFUL, done.message
    assert adapter.pool.stats.connects == 4  # both logins reconnected once
    slurm_jobs = subprocess.run(
        [
            "sacct",
            "-n",
            "-X",
            "-P",
            "-S",
            "now-1hours",
            "--name",
            f"hpcgw-{job.id}",
            "-o",
            "JobID,User",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert slurm_jobs == [f"{done.scheduler_job_id}|alice"]  # submitted exactly once
