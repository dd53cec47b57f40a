"""A site's queue and CPUs (:class:`~hpc_adapters.base.SiteLoad`) from Slurm's own answers.

Transport-neutral and pure: the REST adapter feeds it slurmrestd's job and
partition lists (each version decoding its own numbers), the SSH adapter the
rows of one ``squeue`` and one ``sinfo``. Routing (``gateway.routing``) turns a
partition's load into an expected start.

* a running job holds its CPUs in every partition it names until its time
  limit (``soonest_end_seconds``: the first of those ends);
* a pending job (held ones included) adds CPUs x time limit to the queued work
  of each partition it may run in (``partition`` can be a comma list).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hpc_adapters.base import PartitionLoad, SchedulerState, SiteLoad

#: Time limit assumed for a job whose limit is unlimited or unknown (one day).
UNLIMITED_SECONDS = 86_400


@dataclass(frozen=True)
class QueuedJob:
    """What the load needs of one live job."""

    partitions: tuple[str, ...]
    state: SchedulerState
    cpus: int
    time_limit_seconds: int
    #: Seconds this (running) job may still run, when known.
    remaining_seconds: int | None = None


def split_partitions(value: str | None) -> tuple[str, ...]:
    """``"short,long"`` -> ``("short", "long")``; None/empty -> ``()``."""
    return tuple(p for p in (value or "").split(",") if p)


def site_load(
    totals: dict[str, int], jobs: Iterable[QueuedJob], default: str | None = None
) -> SiteLoad:
    """Each partition of ``totals`` (name -> CPUs, in Slurm's order) with the running and
    pending work in it; ``default`` is Slurm's default partition when known."""
    busy = dict.fromkeys(totals, 0)
    pending = dict.fromkeys(totals, 0)
    pending_work = dict.fromkeys(totals, 0)
    soonest: dict[str, int] = {}
    for job in jobs:
        for part in job.partitions:
            if part not in totals:
                continue
            if job.state is SchedulerState.RUNNING:
                busy[part] += job.cpus
                left = job.remaining_seconds
                left = job.time_limit_seconds if left is None else left
                soonest[part] = min(soonest.get(part, left), left)
            elif job.state is SchedulerState.PENDING:
                pending[part] += 1
                pending_work[part] += job.cpus * job.time_limit_seconds
    return SiteLoad(
        partitions={
            name: PartitionLoad(
                total_cpus=total,
                busy_cpus=min(total, busy[name]),
                pending_jobs=pending[name],
                pending_cpu_seconds=pending_work[name],
                soonest_end_seconds=soonest.get(name),
            )
            for name, total in totals.items()
        },
        default_partition=default,
    )


def limit_seconds(minutes: int | None) -> int:
    """A Slurm time limit in minutes (None: unlimited/unknown) as seconds."""
    return UNLIMITED_SECONDS if minutes is None or minutes <= 0 else minutes * 60


def slurm_duration(text: str) -> int | None:
    """Seconds of a Slurm duration (``[D-]HH:MM:SS``, ``MM:SS``, ``MM``); None if
    ``UNLIMITED``, ``NOT_SET`` or unreadable."""
    text = text.strip()
    days = 0
    if "-" in text:
        head, _, text = text.partition("-")
        if not head.isdigit():
            return None
        days = int(head)
    parts = text.split(":")
    if not parts or not all(p.isdigit() for p in parts) or len(parts) > 3:
        return None
    numbers = [int(p) for p in parts]
    if len(numbers) == 1:  # minutes
        return days * 86_400 + numbers[0] * 60
    while len(numbers) < 3:
        numbers.insert(0, 0)
    hours, minutes, seconds = numbers
    return days * 86_400 + hours * 3600 + minutes * 60 + seconds
