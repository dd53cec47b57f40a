"""Transport-independent steps of ``statuses()``: id hygiene and live/accounting merge.

Both the REST and the SSH adapter ask the controller about every job in one
call, then ask accounting once about the ids the controller has already
forgotten (ended more than ``MinJobAge`` ago). Only the two calls differ.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from hpc_adapters.arrays import collapse_statuses, collapse_usages
from hpc_adapters.base import JobStatus, Usage
from hpc_adapters.slurm.dialects import AccountingRecord, valid_job_id

log = logging.getLogger(__name__)


def valid_ids(job_ids: Iterable[str]) -> list[str]:
    """Unique, well-formed ids in order; malformed ones are dropped with a warning
    (one would crash slurmrestd 22.05's slurmdb query parser)."""
    out: dict[str, None] = {}
    for job_id in job_ids:
        if valid_job_id(job_id):
            out[job_id] = None
        else:
            log.warning("ignoring malformed Slurm job id %r", job_id)
    return list(out)


def merge_statuses(
    wanted: Sequence[str],
    live: Iterable[JobStatus],
    accounting: Callable[[list[str]], Iterable[AccountingRecord]],
) -> dict[str, JobStatus]:
    """Live states for ``wanted`` ids, completed from accounting for the missing ones.

    A job array (asked for by its id) is folded into one status
    (:func:`hpc_adapters.arrays.collapse_statuses`). An array every live task
    of which has ended is read from accounting too: the controller may already
    have forgotten some of its tasks, accounting has them all.
    Linear in the sizes of both lists (the live list holds every job of the cluster).
    """
    wanted_set = set(wanted)
    mine = (s for s in live if s.job_id in wanted_set or s.array_job_id in wanted_set)
    found = {s.job_id: s for s in collapse_statuses(mine) if s.job_id in wanted_set}
    missing = [
        j for j in wanted if j not in found or (found[j].array_tasks and not found[j].state.active)
    ]
    if missing:
        records = collapse_statuses(r.status for r in accounting(missing))
        for status in records:
            if status.job_id in wanted_set and _knows_more(status, found.get(status.job_id)):
                found[status.job_id] = status
    return found


def _knows_more(recorded: JobStatus, live: JobStatus | None) -> bool:
    """Whether accounting's view of an array replaces the controller's: slurmdbd
    may not have recorded every task yet, so only when it has at least as many."""
    if live is None or live.array_tasks is None:
        return True
    return recorded.array_tasks is not None and recorded.array_tasks[1] >= live.array_tasks[1]


def merge_usages(wanted: Sequence[str], records: Iterable[AccountingRecord]) -> dict[str, Usage]:
    """Usage of each ``wanted`` id; a job array's tasks summed under its id."""
    wanted_set = set(wanted)
    usages = collapse_usages(r.usage for r in records)
    return {u.job_id: u for u in usages if u.job_id in wanted_set}


def merge_by_name(
    names: Iterable[str],
    live: Callable[[list[str]], Iterable[JobStatus]],
    accounting: Callable[[list[str]], Iterable[JobStatus]],
) -> dict[str, list[JobStatus]]:
    """Jobs carrying each of ``names``: the controller's, then accounting's for the
    names it does not know (what ``find_by_names`` is on every transport).

    ``live`` and ``accounting`` each get the names to look for and may answer
    more jobs than asked; only jobs with a wanted name are kept. Accounting is
    not asked when the controller knew every name. A job array is one job
    (under the id its submission returned), its tasks folded together.
    """
    wanted = sorted(set(names))
    if not wanted:
        return {}
    found: dict[str, list[JobStatus]] = {}
    for status in collapse_statuses(live(wanted)):
        if status.name in wanted:
            found.setdefault(status.name, []).append(status)
    missing = [n for n in wanted if n not in found]
    if missing:
        for status in collapse_statuses(accounting(missing)):
            if status.name is not None and status.name in missing:
                found.setdefault(status.name, []).append(status)
    return found
