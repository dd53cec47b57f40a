"""Deployed CWL Workflows whose steps run as Slurm jobs of their own (toil), on the real clusters.

``mesocentre`` (Slurm 24.11, its own prefix and ``SLURM_CONF``) declares toil,
``hpcgw`` (22.05) does not. A two-step Workflow deployed with
``"runner": "toil"`` is routed to ``mesocentre`` only; its batch job is toil's
leader, which submits each step with *mesocentre's* ``sbatch`` as the same
user: sacct shows the steps as separate jobs of alice named after the OGC job,
and the job's usage record is the leader's CPU time plus theirs. Dismissing
the job while a step runs cancels that step job too.

The runner's own safety net -- on SIGTERM it cancels every job of the step
name, for a leader that could not cancel its steps itself -- is tested with a
stand-in leader that submits a step and ignores SIGTERM (real Toil cancels its
steps on request, so it never shows that case).

Slurm jobs: the workflow run is one leader and two steps; the cancellation one
leader and one step; the safety net one step.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator

import pytest

from gateway.jobs.states import JobState
from processes.cwl_runner import step_job_name
from tests.clusters import MESOCENTRE
from tests.conftest import REPO, require_cluster, require_root
from tests.identity_fixtures import Keycloak, keycloak
from tests.integration.test_apppkg import (
    DATA,
    Gateway,
    _execute,
    _output_text,
    _pinned_refusal,
    _wait,
)
from tests.integration.test_apppkg_containers import two_site_gateway
from tests.integration.test_eo_services import FAST_USAGE, usage_cpu_seconds
from tests.polling import eventually

pytestmark = pytest.mark.slurm

__all__ = ["keycloak"]

OGCAPPPKG = "application/ogcapppkg+json"
#: A one-step Workflow whose step sleeps (long enough to be cancelled while it runs).
SLEEPER = """
cwlVersion: v1.2
class: Workflow
id: sleeper
inputs:
  seconds: {type: int, default: 300}
outputs:
  out: {type: File, outputSource: nap/out}
steps:
  nap:
    run:
      class: CommandLineTool
      baseCommand: sleep
      inputs:
        seconds: {type: int, inputBinding: {position: 1}}
      outputs:
        out: stdout
    in: {seconds: seconds}
    out: [out]
"""


@pytest.fixture(scope="module")
def two(
    cluster: str, keycloak: Keycloak, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    toil = {"slurm_bin": MESOCENTRE.bin_dir, "slurm_conf": MESOCENTRE.slurm_conf}
    folder = tmp_path_factory.mktemp("toil")
    with two_site_gateway(keycloak, folder, {"toil": toil}, accounting=FAST_USAGE) as gateway:
        yield gateway


def _deploy_with_toil(gw: Gateway, process_id: str, cwl: str) -> None:
    body = {
        "processDescription": {"id": process_id},
        "executionUnit": {"unit": cwl, "config": {"runner": "toil"}},
    }
    resp = gw.deploy("dora", json.dumps(body), OGCAPPPKG)
    assert resp.status_code == 201, resp.get_json()


def _undeploy(gw: Gateway, process_id: str) -> None:
    assert gw.client.delete(f"/processes/{process_id}", headers=gw.h("dora")).status_code == 204


def _steps(job_id: str) -> list[list[str]]:
    """sacct's JobID|User|CPUTimeRAW|State of the step jobs of ``job_id``."""
    out = MESOCENTRE.run(
        "sacct", "-X", "-n", "-P", "-S", "now-1hours", "--name", step_job_name(f"hpcgw-{job_id}"),
        "-o", "JobID,User,CPUTimeRAW,State",
    )  # fmt: skip
    return [line.split("|") for line in out.stdout.splitlines() if line.strip()]


def _completed_steps(job_id: str, count: int) -> list[list[str]] | None:
    steps = _steps(job_id)
    return steps if len(steps) == count and all(r[3] == "COMPLETED" for r in steps) else None


def test_each_step_is_a_slurm_job_of_the_user_accounted_under_the_ogc_job(two: Gateway) -> None:
    _deploy_with_toil(two, "wordreport-toil", (DATA / "wordreport.cwl").read_text())
    try:
        inputs = {"text": "the quick brown fox jumps", "title": "fox"}
        assert "declares no toil" in _pinned_refusal(two, "wordreport-toil", inputs, "hpcgw")

        job_id = _execute(two, "dora", "wordreport-toil", inputs)
        job = _wait(two, job_id)
        assert job.site == "mesocentre", job.routing_reason
        assert job.state is JobState.SUCCESSFUL, job.message
        assert json.loads(_output_text(two, "dora", job_id, "report")) == {
            "title": "fox",
            "words": 5,
        }
        steps = eventually(lambda: _completed_steps(job_id, 2), 60, "2 step jobs in sacct")
        leader = job.scheduler_job_id or ""
        assert leader not in {r[0] for r in steps}
        assert {r[1] for r in steps} == {"alice"}
        assert MESOCENTRE.sacct_settled(leader, "User", "alice") == "alice"
        assert MESOCENTRE.sacct_settled(leader, "State", "COMPLETED") == "COMPLETED"
        leader_cpu = int(MESOCENTRE.sacct_field(leader, "CPUTimeRAW"))
        assert usage_cpu_seconds(two.services, job_id) == leader_cpu + sum(int(r[2]) for r in steps)
    finally:
        _undeploy(two, "wordreport-toil")


def test_dismissing_the_job_cancels_its_running_step_job(two: Gateway) -> None:
    _deploy_with_toil(two, "sleeper-toil", SLEEPER)
    try:
        job_id = _execute(two, "dora", "sleeper-toil", {})
        name = step_job_name(f"hpcgw-{job_id}")

        def step_running() -> str | None:
            out = MESOCENTRE.run("squeue", "-h", "-n", name, "-o", "%i %T").stdout.split()
            return out[0] if out[1:2] == ["RUNNING"] else None

        step = eventually(step_running, 120, "the sleeping step job to run", every=0.5)
        resp = two.client.delete(f"/jobs/{job_id}", headers=two.h("dora"))
        assert resp.status_code == 200, resp.get_json()
        eventually(lambda: step not in MESOCENTRE.squeue_ids(), 60, "the step job to be gone")
        state = MESOCENTRE.sacct_settled(step, "State", "CANCELLED")
        assert state.startswith("CANCELLED"), state
        assert _wait(two, job_id).state is JobState.DISMISSED
    finally:
        _undeploy(two, "sleeper-toil")


#: A leader that submits one step job (as toil would: its name and options from
#: TOIL_SLURM_ARGS) and then ignores SIGTERM, so only the runner can cancel the step.
STUBBORN_LEADER = (
    "sbatch $TOIL_SLURM_ARGS --parsable --wrap 'sleep 300' && trap '' TERM && sleep 300"
)
RUN_LEADER = """
import os, sys
from pathlib import Path
from processes.cwl_runner import run_package, toil_environment
code, _ = run_package(["bash", "-c", sys.argv[1]], Path.cwd(), toil_environment(os.environ))
sys.exit(code)
"""


def test_the_runner_cancels_the_step_jobs_a_terminated_leader_left(cluster: str) -> None:
    require_root("the runner runs as alice")
    require_cluster(MESOCENTRE)
    leader_name = f"hpcgw-{uuid.uuid4()}"
    workspace = tempfile.mkdtemp(prefix="toil-cancel-")
    shutil.chown(workspace, "alice")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/home/alice",
        "PYTHONPATH": str(REPO),
        "SLURM_JOB_NAME": leader_name,
        "SLURM_JOB_PARTITION": MESOCENTRE.partition,
        "HPCGW_TOIL_SLURM_BIN": MESOCENTRE.bin_dir,
        "HPCGW_TOIL_SLURM_CONF": MESOCENTRE.slurm_conf,
    }
    runner = subprocess.Popen(
        [sys.executable, "-c", RUN_LEADER, STUBBORN_LEADER],
        cwd=workspace,
        env=env,
        user="alice",
        group="alice",
        extra_groups=[],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    name = step_job_name(leader_name)
    try:

        def submitted() -> str | None:
            out = MESOCENTRE.run("squeue", "-h", "-n", name, "-o", "%i").stdout.split()
            return out[0] if out else None

        step = eventually(submitted, 60, "the stand-in leader's step job", every=0.5)
        runner.send_signal(signal.SIGTERM)
        _, err = runner.communicate(timeout=60)
        assert runner.returncode == 128 + signal.SIGTERM, err
        assert b"cancelling the workflow's step jobs" in err
        state = MESOCENTRE.sacct_settled(step, "State", "CANCELLED")
        assert state.startswith("CANCELLED"), state
        assert step not in MESOCENTRE.squeue_ids()
    finally:
        if runner.poll() is None:
            runner.kill()
        ids = MESOCENTRE.run("squeue", "-h", "-n", name, "-o", "%i").stdout.split()
        MESOCENTRE.scancel(*ids)
        shutil.rmtree(workspace, ignore_errors=True)
