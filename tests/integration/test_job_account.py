"""A gateway job is charged to its project: the quoted Slurm account reaches ``--account``.

Through the real worker and slurmrestd on the dev cluster. alice is associated
with ``gep`` only (``sacctmgr show assoc``): a job quoted for ``gep`` runs with
``Account=gep`` in sacct; a job quoted for ``hpcgw-ops`` is refused by Slurm,
which shows the account really was passed (without ``--account`` Slurm would
have charged alice's default, ``gep``, and run it), and the job fails with
Slurm's reason instead of crashing the worker.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.app import build_services
from gateway.jobs.records import Job
from gateway.jobs.states import JobState
from tests.accounting_support import PRINCIPALS
from tests.conftest import make_settings, sacct_settled, worker_thread
from tests.polling import eventually

pytestmark = pytest.mark.slurm


def run_echo_as_alice(tmp_path: Path, project: str) -> Job:
    """Submit one echo job as alice with ``project`` as the charged account; its final row."""
    accounting = {"default_project": project, "usage_sweep_seconds": 1}
    services = build_services(make_settings(tmp_path, accounting=accounting))
    try:
        with worker_thread(services):
            job = services.jobs.submit(
                PRINCIPALS["alice"], "echo", {"inputs": {"string_input": f"acct-{project}"}}
            )
            final = wait_until(lambda: _final(services.store.get(job.id)), 120)
        return final
    finally:
        services.close()


def _final(job: Job) -> Job | None:
    return job if job.final else None


def wait_until(probe: Callable[[], Job | None], timeout: float) -> Job:
    return eventually(probe, timeout, "a final job state", every=0.3)


def test_job_runs_under_its_project_account(cluster: str, tmp_path: Path) -> None:
    job = run_echo_as_alice(tmp_path, "gep")
    assert job.state is JobState.SUCCESSFUL, job.message
    assert job.quote is not None and job.quote.project == "gep"
    assert sacct_settled(job.scheduler_job_id or "", "Account", "gep") == "gep"


def test_account_the_user_cannot_use_fails_the_job_with_slurms_reason(
    cluster: str, tmp_path: Path
) -> None:
    job = run_echo_as_alice(tmp_path, "hpcgw-ops")
    assert job.state is JobState.FAILED
    assert job.scheduler_job_id is None
    message = job.message or ""
    assert message.startswith("Submission to the cluster failed: Slurm rejected the job")
    assert "invalid account" in message.lower(), message
    named = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-a", "-S", "now-1hours", "--name", f"hpcgw-{job.id}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert named.stdout.strip() == ""  # nothing reached Slurm
