"""Turn a process definition into a Slurm job for one gateway job.

The batch script is built only from trusted values (site settings and the
process definition), each passed through ``shlex.quote``; user inputs reach
the runner through ``inputs.json`` in the workspace, never through the script.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Callable, Mapping

from gateway.jobs.records import Job
from gateway.settings import SiteSettings
from hpc_adapters.base import JobSpec
from processes.cwl_runner import (
    CONTAINER_RUNTIME_ENV,
    RUNNER_ENV,
    TOIL,
    TOIL_SLURM_BIN_ENV,
    TOIL_SLURM_CONF_ENV,
    step_job_name,
)
from processes.definition import ProcessDefinition
from processes.package import PackagedDefinition
from processes.registry import ProcessRegistry

STDOUT = "slurm.out"
STDERR = "slurm.err"
#: A job array's own per-task Slurm output (``%a``: the task index); its tasks'
#: runners append their stderr to STDERR, which the finaliser reads as usual.
ARRAY_STDOUT = "slurm-%a.out"
ARRAY_STDERR = "slurm-%a.err"
#: Written by the batch script (not the runner) once the runner has exited: the
#: runner's exit status. Only a hint that the job is ending -- the worker then asks
#: the scheduler at once instead of waiting for its next poll (see
#: :meth:`gateway.workflow.monitor.Monitor.run_ended`); its content is never trusted.
END_RECORD = "job-end"
#: cwltool's folder of ready (pulled or provided) SIF images.
SINGULARITY_CACHE_ENV = "CWL_SINGULARITY_CACHE"


def job_name(job_id: str) -> str:
    """The Slurm job name; lets a restarted worker find a job it already submitted."""
    return f"hpcgw-{job_id}"


def workspace_for(site: SiteSettings, job_id: str) -> str:
    return posixpath.join(site.workspace_root, job_id)


def job_umask(site: SiteSettings) -> int:
    """The umask a job runs with: what the workspace folders grant the group and
    others, no more (``workspace_dir_mode`` 0750 -> 027, 2770 -> 007), so a
    gateway under a service account can read what the job writes through the
    workspace group, whatever umask the user's login has."""
    return 0o077 & ~(site.workspace_dir_mode & 0o077)


def runs_with_toil(process: ProcessDefinition, site: SiteSettings) -> bool:
    """Whether ``process`` runs at ``site`` as a toil leader whose steps are Slurm jobs."""
    return (
        isinstance(process, PackagedDefinition)
        and site.toil is not None
        and process.runs_with_toil(site.cwl_runner)
    )


def container_exports(site: SiteSettings) -> list[str]:
    """The batch script lines for a site declaring a container runtime: its name (for
    :mod:`processes.cwl_runner`), its commands first on the PATH and its image folder
    as cwltool's ``CWL_SINGULARITY_CACHE`` when the site gives them (none else)."""
    if not site.container_runtime:
        return []
    q = shlex.quote
    lines = [f"export {CONTAINER_RUNTIME_ENV}={q(site.container_runtime)}"]
    if site.container_bin:
        lines.append(f'export PATH={q(site.container_bin)}:"${{PATH:-/usr/bin:/bin}}"')
    if site.container_images:
        lines.append(f"export {SINGULARITY_CACHE_ENV}={q(site.container_images)}")
    return lines


def toil_exports(process: ProcessDefinition, site: SiteSettings) -> list[str]:
    """The batch script lines that make :mod:`processes.cwl_runner` run toil (none else)."""
    if not runs_with_toil(process, site) or site.toil is None:
        return []
    q = shlex.quote
    lines = [f"export {RUNNER_ENV}={TOIL}"]
    for variable, value in (
        (TOIL_SLURM_BIN_ENV, site.toil.slurm_bin),
        (TOIL_SLURM_CONF_ENV, site.toil.slurm_conf),
    ):
        if value:
            lines.append(f"export {variable}={q(value)}")
    return lines


def toil_step_namer(
    registry: ProcessRegistry, sites: Mapping[str, SiteSettings]
) -> Callable[[Job], str | None]:
    """For the usage recorder: the Slurm job name of a job's toil step jobs (the
    process it ran, at its site's settings, runs with toil), else None."""

    def step_name(job: Job) -> str | None:
        site = sites.get(job.site)
        try:
            process = registry.for_job(job.process_id, job.process_version)
        except LookupError:
            return None
        if site is None or not runs_with_toil(process, site):
            return None
        return step_job_name(job_name(job.id))

    return step_name


def render_script(
    process: ProcessDefinition, site: SiteSettings, workspace: str, array: bool = False
) -> str:
    """The batch script; an array task appends its runner's stderr to STDERR
    (one file for the whole job, written with O_APPEND by every task).

    A single job's script ends by writing END_RECORD (the runner's exit status)
    and exiting with that status, so the worker notices the end without waiting
    for a scheduler poll. An array's tasks each end on their own, so an array
    writes none (``exec``, as before): its end is seen by polling.
    """
    q = shlex.quote
    runner = f"{q(site.python)} -m {q(process.hpc.runner)}"
    head = [
        "#!/bin/bash",
        "set -euo pipefail",
        f"umask {job_umask(site):03o}",
        f"cd {q(workspace)}",
        f"export PYTHONPATH={q(site.pythonpath)}",
        "export PYTHONUNBUFFERED=1",
    ]
    head.extend(container_exports(site))
    head.extend(toil_exports(process, site))
    if array:
        return "\n".join([*head, f"exec {runner} 2>>{STDERR}", ""])
    tail = [
        "rc=0",
        f"{runner} || rc=$?",
        f'{{ echo "$rc" >{END_RECORD}; }} 2>/dev/null || true',
        # a runner killed by a signal: end the same way, so Slurm records the signal
        'if [ "$rc" -gt 128 ]; then kill -s "$((rc - 128))" $$ || true; fi',
        'exit "$rc"',
        "",
    ]
    return "\n".join([*head, *tail])


def job_spec(job: Job, process: ProcessDefinition, site: SiteSettings, workspace: str) -> JobSpec:
    res = process.resources_for(job.inputs)
    array_size = process.array_size_for(job.inputs)
    array = array_size is not None
    return JobSpec(
        name=job_name(job.id),
        script=render_script(process, site, workspace, array),
        workdir=workspace,
        cpus=res.cores,
        memory_mb=res.memory_mb,
        time_limit_minutes=res.walltime_minutes,
        partition=res.partition or site.default_partition,
        # the quoted Slurm account
        account=job.project or (job.quote.project if job.quote is not None else None),
        stdout=posixpath.join(workspace, ARRAY_STDOUT if array else STDOUT),
        stderr=posixpath.join(workspace, ARRAY_STDERR if array else STDERR),
        array_size=array_size,
    )
