"""Workflows run with toil, without a cluster: who asks, the batch script, toil's argv and
environment, the deploy refusal, and the usage of the steps summed under the job."""

from __future__ import annotations

import dataclasses
import json
import shlex
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.accounting.steps import combined
from gateway.apppkg.body import parse_body
from gateway.apppkg.cwl import package_definition
from gateway.apppkg.policy import SiteAbilities
from gateway.errors import BadRequest
from gateway.settings import SiteSettings
from gateway.settings_apppkg import AppPkgSettings, ToilSettings
from gateway.workflow.batch import render_script, runs_with_toil
from hpc_adapters.base import SchedulerState, Usage
from processes.cwl_runner import step_job_name, toil_command, toil_environment
from processes.package import PackagedDefinition

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parent.parent / "apppkg_data"
OGCAPPPKG = "application/ogcapppkg+json"
TOIL_SITES = SiteAbilities(toil=("mesocentre",))


def _package(name: str, config: dict[str, object], sites: SiteAbilities = TOIL_SITES):
    unit = (DATA / name).read_text()
    body = json.dumps({"processDescription": {}, "executionUnit": {"unit": unit, "config": config}})
    return package_definition(
        parse_body(body.encode(), OGCAPPPKG, 256 * 1024), "", AppPkgSettings(), sites
    )


TOIL = SiteSettings(toil=ToilSettings(slurm_bin="/opt/slurm x/bin", slurm_conf="/etc/s.conf"))
TOIL_DEFAULT = SiteSettings(toil=ToilSettings(), cwl_runner="toil")
PLAIN = SiteSettings()


def test_the_package_asks_and_only_sites_with_toil_may_run_it() -> None:
    workflow = _package("wordreport.cwl", {"runner": "toil"})
    assert workflow.hpc.toil and workflow.cwl_run.workflow and workflow.cwl_run.runner == "toil"
    assert runs_with_toil(workflow, TOIL) and not runs_with_toil(workflow, PLAIN)
    # a package asking for cwltool stays in its allocation even where toil is the default
    pinned = _package("wordreport.cwl", {"runner": "cwltool"})
    assert not pinned.hpc.toil and not runs_with_toil(pinned, TOIL_DEFAULT)


def test_without_an_ask_a_workflow_follows_the_site_and_a_tool_never_uses_toil() -> None:
    workflow = _package("wordreport.cwl", {}, SiteAbilities())
    tool = _package("wordcount.cwl", {}, SiteAbilities())
    assert not workflow.hpc.toil and workflow.cwl_run.runner is None
    assert runs_with_toil(workflow, TOIL_DEFAULT)
    assert not runs_with_toil(workflow, TOIL) and not runs_with_toil(workflow, PLAIN)
    assert not tool.cwl_run.workflow and not runs_with_toil(tool, TOIL_DEFAULT)


def test_toil_no_site_has_or_an_unknown_runner_is_refused_at_deploy() -> None:
    with pytest.raises(BadRequest, match="no site of this gateway declares toil"):
        _package("wordreport.cwl", {"runner": "toil"}, SiteAbilities())
    with pytest.raises(BadRequest, match=r"config\.runner must be one of cwltool, toil"):
        _package("wordreport.cwl", {"runner": "nextflow"})
    with pytest.raises(ValidationError, match="needs the site's toil section"):
        SiteSettings(cwl_runner="toil")


def test_the_batch_script_tells_the_runner_and_names_the_sites_slurm() -> None:
    workflow = _package("wordreport.cwl", {"runner": "toil"})
    script = render_script(workflow, TOIL, "/work/j1")
    assert "export HPCGW_CWL_RUNNER=toil" in script
    assert "export HPCGW_TOIL_SLURM_BIN='/opt/slurm x/bin'" in script
    assert "export HPCGW_TOIL_SLURM_CONF=/etc/s.conf" in script
    tool = _package("wordcount.cwl", {})
    assert "HPCGW_CWL_RUNNER" not in render_script(tool, TOIL_DEFAULT, "/work/j1")
    assert isinstance(workflow, PackagedDefinition)


def test_toil_runs_inside_the_workspace_without_a_shell(tmp_path: Path) -> None:
    argv = toil_command(tmp_path, "#main")
    assert argv[0].endswith("/toil-cwl-runner") and argv[1:3] == ["--batchSystem", "slurm"]
    assert argv[argv.index("--jobStore") + 1] == f"file:{tmp_path}/toil/jobstore"
    assert argv[argv.index("--workDir") + 1] == str(tmp_path / "toil")
    assert argv[argv.index("--outdir") + 1] == str(tmp_path / "outputs")
    assert argv[argv.index("--retryCount") + 1] == "0"
    assert argv[-2:] == [f"{tmp_path}/package.cwl#main", f"{tmp_path}/cwl_job.json"]


def test_step_jobs_go_to_the_leaders_cluster_account_and_partition_under_its_name() -> None:
    env = toil_environment(
        {
            "PATH": "/usr/bin:/bin",
            "SLURM_JOB_NAME": "hpcgw-j1",
            "SLURM_JOB_ACCOUNT": "gep",
            "SLURM_JOB_PARTITION": "short queue",
            "HPCGW_TOIL_SLURM_BIN": "/opt/slurm-24.11/bin",
            "HPCGW_TOIL_SLURM_CONF": "/etc/slurm-mesocentre/slurm.conf",
        }
    )
    path = env["PATH"].split(":")
    assert path[1:] == ["/opt/slurm-24.11/bin", "/usr/bin", "/bin"]
    assert Path(path[0], "_toil_worker").name == "_toil_worker"  # the Python's own bin folder
    assert env["SLURM_CONF"] == "/etc/slurm-mesocentre/slurm.conf"
    assert shlex.split(env["TOIL_SLURM_ARGS"]) == [
        "--job-name=hpcgw-j1-step",
        "--account=gep",
        "--partition=short queue",
    ]
    assert step_job_name("hpcgw-j1") == "hpcgw-j1-step"
    # nothing of the site's: the job's own PATH and SLURM_CONF stay
    bare = toil_environment({"PATH": "/usr/bin", "SLURM_CONF": "/etc/slurm/slurm.conf"})
    assert bare["SLURM_CONF"] == "/etc/slurm/slurm.conf" and bare["PATH"].endswith(":/usr/bin")


def _usage(job_id: str, cpu: int, end: int, rss: int | None = None) -> Usage:
    return Usage(
        job_id=job_id,
        user="alice",
        account="gep",
        partition="short",
        state=SchedulerState.COMPLETED,
        exit_code=0,
        alloc_cpus=1,
        elapsed_seconds=cpu,
        cpu_seconds=cpu,
        total_cpu_seconds=cpu / 2,
        max_rss_bytes=rss,
        end_time=datetime(2026, 1, 1, 0, 0, end, tzinfo=UTC),
    )


def test_the_steps_cpu_time_is_added_to_the_leaders() -> None:
    leader = _usage("10", 30, 40, rss=100)
    steps = [_usage("11", 5, 20, rss=300), _usage("12", 7, 35)]
    total = combined(leader, steps)
    assert (total.cpu_seconds, total.total_cpu_seconds) == (42, 21.0)
    assert total.max_rss_bytes == 300 and total.end_time == leader.end_time
    assert (total.job_id, total.elapsed_seconds, total.alloc_cpus) == ("10", 30, 1)
    assert combined(leader, []) is leader
    later = dataclasses.replace(steps[0], end_time=datetime(2026, 1, 1, 0, 1, tzinfo=UTC))
    assert combined(leader, [later]).end_time == later.end_time
