"""The Slurm jobs a job's own Slurm job started: their usage, summed under the OGC job.

A deployed CWL Workflow run with toil (``toil-cwl-runner --batchSystem slurm``)
is a leader job -- the OGC job's Slurm job -- plus one Slurm job per step,
submitted by the leader as the same user and named after it
(:func:`processes.cwl_runner.step_job_name`). The usage recorder asks who
names a job's steps (a :data:`StepNamer`, wired in the composition root),
finds them by that name at the job's site (``find_by_names``: controller, then
accounting), keeps those of the leader's own Slurm user, and records the sum
(:func:`combined`) as the OGC job's usage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from gateway.jobs.records import Job
from hpc_adapters.base import SchedulerAdapter, Usage

#: The Slurm job name of a job's step jobs, or None when it has none.
StepNamer = Callable[[Job], str | None]


class StepsNotFinal(Exception):
    """A step's accounting is not final yet (retried later, like the leader's)."""


def step_usages(adapter: SchedulerAdapter, job: Job, name: str, leader: Usage) -> list[Usage]:
    """The finished step jobs named ``name`` of the leader's Slurm user at ``adapter``'s
    site; StepsNotFinal while one is active or not yet in accounting."""
    found = adapter.find_by_names([name], job.created).get(name, [])
    ids = [s.job_id for s in found if s.user in (None, leader.user)]
    if not ids:
        return []
    usages = adapter.usages(ids)
    result: list[Usage] = []
    for job_id in ids:
        usage = usages.get(job_id)
        if usage is None:
            raise StepsNotFinal(f"Slurm accounting has no record of step job {job_id} yet")
        if usage.state.active or usage.end_time is None:
            raise StepsNotFinal(f"step job {job_id} is not finished in Slurm accounting yet")
        if usage.user == leader.user:
            result.append(usage)
    return result


def combined(leader: Usage, steps: Sequence[Usage]) -> Usage:
    """The leader's usage with its steps' CPU time added: ``cpu_seconds`` (core-hours)
    and ``total_cpu_seconds`` are sums, ``max_rss_bytes`` the largest, ``end_time`` the
    last; elapsed time, allocated CPUs and billing stay the leader's own."""
    if not steps:
        return leader
    every = (leader, *steps)
    totals = [u.total_cpu_seconds for u in every if u.total_cpu_seconds is not None]
    rss = [u.max_rss_bytes for u in every if u.max_rss_bytes is not None]
    ends = [u.end_time for u in every if u.end_time is not None]
    return dataclasses.replace(
        leader,
        cpu_seconds=sum(u.cpu_seconds for u in every),
        total_cpu_seconds=sum(totals) if totals else None,
        max_rss_bytes=max(rss) if rss else None,
        end_time=max(ends) if ends else None,
    )
