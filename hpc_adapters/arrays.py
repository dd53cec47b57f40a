"""Job arrays seen as one job: fold the tasks' states and accounting together.

Slurm lists every task of an array as a job of its own (its own id, plus
``array_job_id``/``array_task_id``; the array's id is the id of one of its
tasks, and ``sacct`` prints tasks as ``<array id>_<index>``). The gateway
submits an array once and follows it by the id ``submit`` returned, so every
transport folds the task records it read with these two functions:

* :func:`collapse_statuses`: one :class:`JobStatus` per array, keyed by the
  array id. Active while any task is; then COMPLETED only if every task
  completed, otherwise the state, exit code and reason of the first task (by
  index) that did not (a failed tile fails the job with *that* tile's error).
* :func:`collapse_usages`: one :class:`Usage` per array with CPU time,
  elapsed time and billing summed over every task (core-hours of the whole
  array), the largest RSS, the earliest start and latest end.

Records of plain jobs pass through unchanged. Pure functions: no transport.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import TypeVar

from hpc_adapters.base import JobStatus, SchedulerState, Usage

T = TypeVar("T", JobStatus, Usage)


def _group(records: Iterable[T], key: str) -> tuple[list[T], dict[str, list[T]]]:
    """Plain records, and array tasks grouped by their array id."""
    plain: list[T] = []
    arrays: dict[str, list[T]] = {}
    for record in records:
        array_id = getattr(record, key)
        if array_id is None:
            plain.append(record)
        else:
            arrays.setdefault(array_id, []).append(record)
    return plain, arrays


def _index(status: JobStatus) -> int:
    return status.array_task_id if status.array_task_id is not None else 1 << 30


def _earliest(values: Iterable[datetime | None]) -> datetime | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def _latest(values: Iterable[datetime | None]) -> datetime | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def fold_statuses(array_id: str, tasks: list[JobStatus]) -> JobStatus:
    """One status for the array ``array_id`` from its tasks' statuses."""
    tasks = sorted(tasks, key=_index)
    finished = sum(1 for t in tasks if not t.state.active)
    active = [t for t in tasks if t.state.active]
    bad = next((t for t in tasks if not t.state.succeeded), None)
    if active:
        started = any(t.state.started for t in tasks)
        state = SchedulerState.RUNNING if started else active[0].state
        folded = JobStatus(
            array_id, state, state.value, reason=None if started else active[0].reason
        )
    elif bad is not None:
        # the task's own reason is often stale (``JobArrayTaskLimit`` of its pending days)
        folded = dataclasses.replace(bad, job_id=array_id, reason=f"array task {bad.array_task_id}")
    else:
        folded = JobStatus(array_id, SchedulerState.COMPLETED, "COMPLETED", exit_code=0)
    return dataclasses.replace(
        folded,
        name=tasks[0].name,
        user=tasks[0].user,
        submit_time=_earliest(t.submit_time for t in tasks),
        start_time=_earliest(t.start_time for t in tasks),
        end_time=None if active else _latest(t.end_time for t in tasks),
        array_job_id=None,
        array_task_id=None,
        array_tasks=(finished, len(tasks)),
    )


def collapse_statuses(records: Iterable[JobStatus]) -> list[JobStatus]:
    """Plain jobs as they are, each array folded into one status under its id."""
    plain, arrays = _group(records, "array_job_id")
    return plain + [fold_statuses(array_id, tasks) for array_id, tasks in arrays.items()]


def fold_usages(array_id: str, tasks: list[Usage]) -> Usage:
    """One usage for the array ``array_id``: every task's accounting summed."""
    first = tasks[0]
    totals = [t.total_cpu_seconds for t in tasks if t.total_cpu_seconds is not None]
    billing = [t.billing for t in tasks if t.billing is not None]
    rss = [t.max_rss_bytes for t in tasks if t.max_rss_bytes is not None]
    bad = next((t for t in tasks if not t.state.succeeded), None)
    return dataclasses.replace(
        first,
        job_id=array_id,
        state=bad.state if bad is not None else first.state,
        exit_code=bad.exit_code if bad is not None else first.exit_code,
        alloc_cpus=max(t.alloc_cpus for t in tasks),
        elapsed_seconds=sum(t.elapsed_seconds for t in tasks),
        cpu_seconds=sum(t.cpu_seconds for t in tasks),
        total_cpu_seconds=round(sum(totals), 6) if totals else None,
        billing=sum(billing) if billing else None,
        max_rss_bytes=max(rss) if rss else None,
        submit_time=_earliest(t.submit_time for t in tasks),
        start_time=_earliest(t.start_time for t in tasks),
        end_time=_latest(t.end_time for t in tasks),
        array_job_id=None,
        tasks=len(tasks),
    )


def collapse_usages(records: Iterable[Usage]) -> list[Usage]:
    """Plain jobs' usage as it is, each array's tasks summed under its id."""
    plain, arrays = _group(records, "array_job_id")
    return plain + [fold_usages(array_id, tasks) for array_id, tasks in arrays.items()]


def array_id_of(array_job_id: int | None) -> str | None:
    """The array id to record for a task, or None for a plain job
    (Slurm reports ``array_job_id`` 0, or no value, for a plain job)."""
    if array_job_id is None or array_job_id <= 0:
        return None
    return str(array_job_id)
