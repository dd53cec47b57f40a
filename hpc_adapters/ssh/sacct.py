"""``sacct``: accounting of jobs the controller has forgotten, and usage of many jobs.

One ``sacct --parsable2 --noheader --allusers -j <ids>`` per call. Job rows give
the final state, exit code (``code:signal``; right, unlike slurmrestd 22.05's
accounting) and allocation; step rows (``12.batch``) give the maximum RSS.
Durations (``[D-][HH:]MM:SS[.mmm]``) and sizes (``1234K``) are parsed here.
"""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Sequence
from datetime import UTC, datetime

from hpc_adapters.base import JobStatus, Usage
from hpc_adapters.slurm.dialect_base import checked_names
from hpc_adapters.slurm.dialects import AccountingRecord, epoch, valid_job_id
from hpc_adapters.slurm.states import parse_state
from hpc_adapters.ssh.commands import (
    EPOCH_TIMES,
    CommandResult,
    check_ran,
    epoch_text,
    quoted_ids,
)

log = logging.getLogger(__name__)

SACCT_FIELDS = (
    "JobIDRaw",
    "State",
    "ExitCode",
    "Reason",
    "User",
    "Account",
    "Partition",
    "AllocCPUS",
    "ElapsedRaw",
    "CPUTimeRAW",
    "TotalCPU",
    "AllocTRES",
    "MaxRSS",
    "Submit",
    "Start",
    "End",
    "JobID",
    "JobName",
)


class Sacct:
    """``sacct --parsable2 --noheader --allusers -j <ids>`` (or ``--name=<names> -S <since>``);
    ``steps`` adds step rows (MaxRSS)."""

    verb = "sacct"
    idempotent = True

    def __init__(
        self,
        job_ids: Sequence[str] = (),
        steps: bool = False,
        *,
        names: Sequence[str] = (),
        since: datetime | None = None,
    ) -> None:
        """Jobs by id, or (``names`` + ``since``) by name: sacct needs a start time
        with ``--name`` (without ``-j`` it only searches since midnight); it is given
        in UTC and the command runs with ``TZ=UTC``."""
        if names:
            if since is None:
                raise ValueError("a search by name needs a start time")
            start = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self.selection = f"--name={shlex.quote(','.join(checked_names(names)))} -S {start}"
        else:
            self.selection = f"-j {quoted_ids(job_ids)}"
        self.steps = steps

    def line(self) -> str:
        allocations = "" if self.steps else " -X"
        return (
            f"{EPOCH_TIMES} TZ=UTC sacct --parsable2 --noheader --allusers"
            f"{allocations} {self.selection} -o {shlex.quote(','.join(SACCT_FIELDS))}"
        )

    def stdin(self) -> bytes | None:
        return None

    def parse(self, result: CommandResult) -> list[AccountingRecord]:
        check_ran(self.verb, result)
        return parse_sacct(result.stdout)


def parse_duration(text: str) -> float | None:
    """sacct durations ``[D-][HH:]MM:SS[.mmm]`` -> seconds; None when blank/unparsable."""
    text = text.strip()
    m = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)", text)
    if not m:
        return None
    days, hours, minutes, seconds = m.groups()
    return round(
        int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds), 6
    )


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}


def parse_size(text: str) -> int | None:
    """sacct sizes (``MaxRSS``) such as ``1234K`` or ``1.5G`` -> bytes; None when blank."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGTP]?)", text.strip())
    if not m:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def parse_exit(text: str) -> tuple[int | None, int | None]:
    """sacct ``ExitCode`` ``code:signal`` -> (exit_code, signal), like :func:`wait_status`."""
    m = re.fullmatch(r"(\d+):(\d+)", text.strip())
    if not m:
        return None, None
    code, signal = int(m.group(1)), int(m.group(2))
    return (None, signal) if signal else (code, None)


def _tres(text: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in text.split(",") if "=" in item)
    return {k: v for k, v in pairs}


def _int_text(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def parse_sacct(text: str) -> list[AccountingRecord]:
    """Job rows of ``sacct`` with :data:`SACCT_FIELDS`; step rows (``12.batch``) feed MaxRSS."""
    jobs: dict[str, list[str]] = {}
    rss: dict[str, int] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("|", len(SACCT_FIELDS) - 1)
        if len(parts) != len(SACCT_FIELDS):
            log.warning("skipping unexpected sacct line %r", line[:200])
            continue
        job_id, _, step = parts[0].strip().partition(".")
        if not valid_job_id(job_id):
            continue
        if step:
            size = parse_size(parts[12])
            if size is not None:
                rss[job_id] = max(size, rss.get(job_id, 0))
        else:
            jobs[job_id] = parts
    return [_record(fields, rss.get(job_id)) for job_id, fields in jobs.items()]


def _record(fields: list[str], max_rss: int | None) -> AccountingRecord:
    (job_id, raw, code, reason, user, account, partition, cpus, elapsed, cputime) = fields[:10]
    total_cpu, tres, _, submit, start, end, array_text, name = fields[10:]
    array_job, _, array_task = array_text.strip().partition("_")  # "12_3", "12_[4-9]"
    state = parse_state(raw.strip())
    exit_code, signal = parse_exit(code)
    alloc_cpus = _int_text(cpus) or 0
    elapsed_s = _int_text(elapsed) or 0
    cpu_s = _int_text(cputime)
    billing = _tres(tres).get("billing", "")
    status = JobStatus(
        job_id=job_id,
        state=state,
        raw_state=raw.strip(),
        exit_code=exit_code,
        signal=signal,
        reason=None if reason.strip() in ("", "None") else reason.strip(),
        submit_time=epoch(epoch_text(submit)),
        start_time=epoch(epoch_text(start)),
        end_time=epoch(epoch_text(end)),
        name=name or None,
        user=user.strip() or None,
        array_job_id=array_job if array_task else None,
        array_task_id=int(array_task) if array_task.isdigit() else None,
    )
    usage = Usage(
        job_id=job_id,
        user=user.strip(),
        account=account.strip() or None,
        partition=partition.strip() or None,
        state=state,
        exit_code=exit_code,
        alloc_cpus=alloc_cpus,
        elapsed_seconds=elapsed_s,
        cpu_seconds=cpu_s if cpu_s is not None else alloc_cpus * elapsed_s,
        total_cpu_seconds=parse_duration(total_cpu),
        billing=int(billing) if billing.isdigit() else None,
        max_rss_bytes=max_rss,
        submit_time=status.submit_time,
        start_time=status.start_time,
        end_time=status.end_time,
        array_job_id=status.array_job_id,
    )
    return AccountingRecord(status=status, usage=usage)
