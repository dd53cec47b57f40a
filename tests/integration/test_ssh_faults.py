"""The SSH connection cut mid-command: repeat what is safe, look up what is not.

The SSH adapter talks to the REAL 24.11 login node (sshd :2223, real Slurm)
through :class:`tests.tcp_relay.CutRelay`, which cuts the connection while a
command runs: the command has reached sshd, its answer never comes back.

* ``sbatch`` cut that way: its outcome is unknown, so it is NOT repeated; the
  job waits (its status says the connection was lost during sbatch) and the
  next dispatch looks it up by name and adopts the Slurm job that sbatch did
  make -- one Slurm job, the job ends successful;
* ``squeue`` (a query, safe to repeat) cut that way: the pool repeats it on a
  new connection and the monitor's cycle goes on as if nothing happened.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest

from gateway.app import build_worker
from gateway.jobs.states import JobState
from gateway.services import Services
from gateway.workflow.batch import job_name
from gateway.workflow.worker import Worker
from hpc_adapters.ssh import transport
from hpc_adapters.ssh.adapter import SshAdapter
from hpc_adapters.ssh.commands import CommandResult
from tests.clusters import MESOCENTRE
from tests.faults import rest_site, site_services, slurm_jobs_named
from tests.integration.adapters import (
    SSH_CA_KEY,
    SSH_SERVICE_USER,
    SSH_WORK_ROOT,
    ssh_known_hosts,
)
from tests.integration.test_workflow import ALICE
from tests.polling import eventually
from tests.tcp_relay import CutRelay

pytestmark = pytest.mark.slurm

Exchange = Callable[[paramiko.Channel, str, str, bytes | None, float, int], CommandResult]


@pytest.fixture
def relay() -> Iterator[CutRelay]:
    cut = CutRelay("127.0.0.1", MESOCENTRE.ssh_port)
    yield cut
    cut.close()


@pytest.fixture
def ssh_services(tmp_path: Path, relay: CutRelay) -> Iterator[Services]:
    os.makedirs(SSH_WORK_ROOT, exist_ok=True)
    os.chmod(SSH_WORK_ROOT, 0o1777)  # users create their own job directories over SFTP
    ssh = {
        "host": "127.0.0.1",
        "port": relay.port,
        "known_hosts_file": ssh_known_hosts("127.0.0.1", relay.port),
        "ca_key_file": SSH_CA_KEY,
        "service_user": SSH_SERVICE_USER,
    }
    site = rest_site(MESOCENTRE, adapter="ssh", ssh=ssh, workspace_root=SSH_WORK_ROOT)
    with site_services(tmp_path, MESOCENTRE, sites={MESOCENTRE.name: site}) as services:
        yield services


class _HeldAfterInput:
    """A channel whose answers are held by the relay once its command and input are sent."""

    def __init__(self, chan: paramiko.Channel, then: Callable[[], None]) -> None:
        self._chan, self._then = chan, then

    def __getattr__(self, name: str) -> object:
        return getattr(self._chan, name)

    def shutdown_write(self) -> None:
        self._chan.shutdown_write()
        self._then()


def _cut_during(
    monkeypatch: pytest.MonkeyPatch, relay: CutRelay, verb: str, ready: Callable[[], bool]
) -> None:
    """The next ``verb`` runs at the site, then its connection is cut before it answers."""
    real: Exchange = transport.exchange
    armed = [True]

    def cut_when_ready() -> None:
        eventually(ready, 60, f"{verb} to have run at the site", every=0.1)
        relay.cut()

    def hold_then_cut() -> None:
        relay.hold()  # the command runs at the site; its answer stays in the relay
        threading.Thread(target=cut_when_ready, daemon=True).start()

    def exchange(chan: paramiko.Channel, what: str, *args: object) -> CommandResult:
        if what == verb and armed[0]:
            armed[0] = False
            chan = _HeldAfterInput(chan, hold_then_cut)  # type: ignore[assignment]
        return real(chan, what, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(transport, "exchange", exchange)


def _in_slurm(name: str) -> bool:
    """The cluster's own squeue or sacct knows a job named ``name``."""
    live = MESOCENTRE.run("squeue", "-h", "-n", name, "-o", "%i").stdout.split()
    return bool(live or slurm_jobs_named(MESOCENTRE, name))


def _pool(services: Services) -> transport.SshPool:
    adapter = services.sites.adapter(MESOCENTRE.name)
    adapter = getattr(adapter, "inner", adapter)  # under the accounting's instrumentation
    assert isinstance(adapter, SshAdapter)
    return adapter.pool


def _run_until(worker: Worker, done: Callable[[], bool], what: str) -> None:
    def cycle() -> bool:
        worker.run_once()
        return done()

    eventually(cycle, 180, what, every=0.3)


def test_a_cut_sbatch_is_looked_up_never_repeated_and_a_cut_query_is_repeated(
    ssh_services: Services, relay: CutRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = ssh_services
    worker = build_worker(services)
    job = services.jobs.submit(ALICE, "echo", {"inputs": {"string_input": "cut"}})
    name = job_name(job.id)
    _cut_during(monkeypatch, relay, "sbatch", lambda: _in_slurm(name))

    worker.dispatcher.run_once()  # sbatch runs; the connection dies before it answers

    waiting = services.store.get(job.id)
    assert relay.cuts == 1
    assert waiting.state is JobState.STAGING and waiting.scheduler_job_id is None
    assert "lost during sbatch" in (waiting.message or ""), waiting.message
    [slurm_id] = slurm_jobs_named(MESOCENTRE, name)  # sbatch did submit it, once

    eventually(  # the dispatcher alone: the monitor would move the job on at once
        lambda: worker.dispatcher.run_once() >= 0 and services.store.get(job.id).scheduler_job_id,
        180,
        "the job to be looked up again",
        every=0.3,
    )
    adopted = services.store.get(job.id)
    assert adopted.scheduler_job_id == slurm_id
    assert "adopted, not submitted again" in (adopted.message or ""), adopted.message

    retries = _pool(services).stats.retries
    _cut_during(monkeypatch, relay, "squeue", lambda: True)
    _run_until(worker, lambda: services.store.get(job.id).final, "the job to end")
    assert relay.cuts == 2 and _pool(services).stats.retries > retries  # squeue repeated
    done = services.store.get(job.id)
    assert done.state is JobState.SUCCESSFUL and done.results == {"string_output": "cut"}
    assert slurm_jobs_named(MESOCENTRE, name) == [slurm_id]  # never submitted again
