"""What every slurmrestd dialect shares: the records, the value decoders, the base class.

A :class:`Dialect` builds request paths and bodies and parses answers for one
slurmrestd OpenAPI version; the transport (:mod:`hpc_adapters.slurmrest`) only
moves bytes. The per-version classes live in :mod:`.v0038` and :mod:`.v004x`;
:mod:`.dialects` is the registry.

The two builders at the end (:func:`live_status`, :func:`accounting_record`)
hold what the versions agree on (field names of a job, of its accounting
record and of its steps); a version passes its own decoders for the fields it
encodes differently (times, states, exit codes).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hpc_adapters.arrays import array_id_of
from hpc_adapters.base import JobSpec, JobStatus, SchedulerState, Usage
from hpc_adapters.slurm.load import QueuedJob, limit_seconds, split_partitions
from hpc_adapters.slurm.states import parse_state, state_name

Json = dict[str, Any]

#: Numbers Slurm uses for "no value" (NO_VAL, INFINITE, NO_VAL64 truncated).
_NO_VALUES = frozenset({0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFE, 0xFFFFFFFFFFFFFFFF})
_JOB_ID = re.compile(r"^[0-9]{1,10}$")


@dataclass(frozen=True)
class SlurmApiError:
    """One entry of a response's ``errors`` array (or of a cancel's ``status``)."""

    code: int | None
    message: str


@dataclass(frozen=True)
class SubmitResult:
    """What a submit answered: the job id, or None, plus errors/warnings."""

    job_id: str | None
    errors: tuple[SlurmApiError, ...]


@dataclass(frozen=True)
class AccountingRecord:
    """One job as slurmdbd reports it: its final status and its usage."""

    status: JobStatus
    usage: Usage


def valid_job_id(job_id: str) -> bool:
    """True for a plain numeric Slurm job id (the only form we ever submit)."""
    return bool(_JOB_ID.match(job_id))


def checked_ids(job_ids: Sequence[str]) -> Sequence[str]:
    """``job_ids`` if all are plain numeric ids; ValueError otherwise (or if empty)."""
    bad = [j for j in job_ids if not valid_job_id(j)]
    if bad or not job_ids:
        raise ValueError(f"not Slurm job ids: {bad!r}")
    return job_ids


_JOB_NAME = re.compile(r"^[A-Za-z0-9_.:+-]{1,200}$")


def checked_names(names: Sequence[str]) -> Sequence[str]:
    """``names`` if each is a plain job name (no comma, space or quote); ValueError otherwise."""
    bad = [n for n in names if not _JOB_NAME.match(n)]
    if bad or not names:
        raise ValueError(f"not plain Slurm job names: {bad!r}")
    return names


def epoch(value: object) -> datetime | None:
    """Epoch seconds -> aware UTC datetime; 0, None and NO_VAL give None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    if value <= 0 or value in _NO_VALUES:
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def as_int(value: object) -> int | None:
    """An integer that is not one of Slurm's "no value" markers, else None."""
    if isinstance(value, bool) or not isinstance(value, int) or value in _NO_VALUES:
        return None
    return value


def as_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def as_dict(value: object) -> Json:
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def wait_status(raw: object) -> tuple[int | None, int | None]:
    """Decode a raw wait status into (exit_code, signal)."""
    status = as_int(raw)
    if status is None or status < 0:
        return None, None
    signal = status & 0x7F
    if signal:
        return None, signal
    return (status >> 8) & 0xFF, None


def error_entries(entries: object) -> list[SlurmApiError]:
    """``errors`` entries: ``error_number`` (queries) or ``error_code`` (22.05 submit)."""
    out = []
    for entry in as_list(entries):
        item = as_dict(entry)
        code = as_int(item.get("error_number", item.get("error_code")))
        parts = [as_str(item.get("error")), as_str(item.get("description"))]
        text = ": ".join(dict.fromkeys(p for p in parts if p)) or "unspecified error"
        out.append(SlurmApiError(code=code, message=text))
    return out


class Dialect:
    """Base of the per-version dialects; the paths take the version string."""

    version: str = ""
    #: False where a cancel answers success whatever happened (v0.0.40/41): the
    #: adapter then reads the job back to learn the outcome.
    cancel_reports_outcome: bool = True

    # ------------------------------------------------------------ paths ----
    def ping_path(self) -> str:
        return f"/slurm/{self.version}/ping"

    def diag_path(self) -> str:
        return f"/slurm/{self.version}/diag"

    def submit_path(self) -> str:
        return f"/slurm/{self.version}/job/submit"

    def jobs_path(self) -> str:
        return f"/slurm/{self.version}/jobs"

    def job_path(self, job_id: str) -> str:
        if not valid_job_id(job_id):
            raise ValueError(f"not a Slurm job id: {job_id!r}")
        return f"/slurm/{self.version}/job/{job_id}"

    def db_jobs_path(self) -> str:
        return f"/slurmdb/{self.version}/jobs"

    def db_clusters_path(self) -> str:
        return f"/slurmdb/{self.version}/clusters"

    def partitions_path(self) -> str:
        return f"/slurm/{self.version}/partitions"

    def associations_path(self) -> str:
        return f"/slurmdb/{self.version}/associations"

    # ----------------------------------------------------- version-specific ----
    def submit_body(self, spec: JobSpec, environment: Mapping[str, str]) -> Json:
        raise NotImplementedError

    def db_jobs_query(self, job_ids: Sequence[str]) -> str:
        raise NotImplementedError

    def db_jobs_by_name_query(self, names: Sequence[str]) -> str:
        """slurmdb jobs named any of ``names``: ``job_name=a%2Cb`` (every version
        checked takes the percent-encoded list; a raw comma answers 400)."""
        return "job_name=" + "%2C".join(checked_names(names))

    def parse_errors(self, body: Json) -> list[SlurmApiError]:
        return error_entries(body.get("errors"))

    def cancel_errors(self, body: Json) -> list[SlurmApiError]:
        """What a ``DELETE /job/{id}`` answer says went wrong (empty: nothing)."""
        return self.parse_errors(body)

    def update_time_query(self, since: int, now: float) -> str:
        """Query of a conditional ``GET /jobs``: jobs changed since epoch ``since``
        (``now`` is this host's clock, for dialects that want a relative time)."""
        return f"update_time={since}"

    def not_modified(self, status: int, body: Json) -> bool:
        """True when a conditional ``GET /jobs?update_time=`` says nothing changed."""
        return status == 304

    def parse_submit(self, body: Json) -> SubmitResult:
        """``job_id`` (present even with warnings such as a held job) and errors."""
        job_id = as_int(body.get("job_id"))
        return SubmitResult(
            job_id=str(job_id) if job_id is not None else None,
            errors=tuple(self.parse_errors(body)),
        )

    def parse_jobs(self, body: Json) -> list[JobStatus]:
        raise NotImplementedError

    def parse_db_jobs(self, body: Json) -> list[AccountingRecord]:
        """Every job of a slurmdb jobs answer; a requeued job's several records
        collapse to the latest one."""
        latest: dict[str, AccountingRecord] = {}
        for item in as_list(body.get("jobs")):
            record = self.accounting(as_dict(item))
            previous = latest.get(record.status.job_id)
            if previous is None or _later(record, previous):
                latest[record.status.job_id] = record
        return list(latest.values())

    def accounting(self, job: Json) -> AccountingRecord:
        raise NotImplementedError

    def parse_ping(self, body: Json) -> dict[str, str]:
        raise NotImplementedError

    def number(self, value: object) -> int | None:
        """A count or epoch in this version's encoding (plain int here)."""
        return as_int(value)

    def parse_partitions(self, body: Json) -> tuple[dict[str, int], str | None]:
        """Partition name -> CPUs of a ``GET /partitions`` answer (22.05: ``total_cpus``,
        23.11+: ``cpus.total``), and the one flagged ``default`` if any says so."""
        totals: dict[str, int] = {}
        default: str | None = None
        for part in map(as_dict, as_list(body.get("partitions"))):
            name = as_str(part.get("name"))
            cpus = self.number(part.get("total_cpus"))
            if cpus is None:
                cpus = self.number(as_dict(part.get("cpus")).get("total"))
            if name and cpus is not None:
                totals[name] = cpus
            flags = [
                *as_list(part.get("flags")),
                *as_list(as_dict(part.get("partition")).get("flags")),
            ]
            if name and any(isinstance(f, str) and f.upper() == "DEFAULT" for f in flags):
                default = name
        return totals, default

    def parse_queue(self, body: Json, now: float) -> list[QueuedJob]:
        """The pending and running jobs of a ``GET /jobs`` answer, for :func:`site_load`."""
        queued: list[QueuedJob] = []
        for job in map(as_dict, as_list(body.get("jobs"))):
            raw = job.get("job_state")
            state = parse_state(raw if isinstance(raw, (str, list)) else None)
            if state not in (SchedulerState.PENDING, SchedulerState.RUNNING):
                continue
            end = self.number(job.get("end_time"))
            remaining = max(0, int(end - now)) if end and state.started else None
            queued.append(
                QueuedJob(
                    partitions=split_partitions(as_str(job.get("partition"))),
                    state=state,
                    cpus=self.number(job.get("cpus")) or 1,
                    time_limit_seconds=limit_seconds(self.number(job.get("time_limit"))),
                    remaining_seconds=remaining,
                )
            )
        return queued

    def parse_associations(self, body: Json) -> dict[str, frozenset[str]]:
        """HPC login -> Slurm accounts of a slurmdb ``/associations`` answer."""
        found: dict[str, set[str]] = {}
        for assoc in map(as_dict, as_list(body.get("associations"))):
            user, account = as_str(assoc.get("user")), as_str(assoc.get("account"))
            if user and account:
                found.setdefault(user, set()).add(account)
        return {user: frozenset(accounts) for user, accounts in found.items()}

    def parse_clusters(self, body: Json) -> list[str]:
        """Cluster names of a slurmdb ``/clusters`` answer."""
        names = (as_str(as_dict(c).get("name")) for c in as_list(body.get("clusters")))
        return [n for n in names if n]


# ------------------------------------------------------------- builders ----

#: Decodes one time field of a live job (epoch int, or a no-val struct).
TimeDecoder = Callable[[object], datetime | None]


def live_status(
    job: Json,
    when: TimeDecoder,
    exit_of: Callable[[object], tuple[int | None, int | None]],
    count: Callable[[object], int | None] = as_int,
) -> JobStatus:
    """A live job (``GET /slurm/.../jobs``) as a JobStatus; ``when`` decodes its
    times, ``exit_of`` its exit code and ``count`` its numbers (array ids), each in
    the version's encoding."""
    raw = job.get("job_state")
    raw_state = raw if isinstance(raw, (str, list)) else None
    state = parse_state(raw_state)
    final = not state.active
    exit_code, signal = exit_of(job.get("exit_code")) if final else (None, None)
    reason = as_str(job.get("state_reason"))
    return JobStatus(
        job_id=str(job.get("job_id")),
        state=state,
        raw_state=state_name(raw_state),
        exit_code=exit_code,
        signal=signal,
        reason=None if reason == "None" else reason,
        submit_time=when(job.get("submit_time")),
        # a running job's end_time is its *projected* end (start + limit): ignored
        start_time=when(job.get("start_time")) if state.started else None,
        end_time=when(job.get("end_time")) if final else None,
        name=as_str(job.get("name")),
        user=as_str(job.get("user_name")),
        array_job_id=array_id_of(count(job.get("array_job_id"))),
        array_task_id=count(job.get("array_task_id")),
    )


def accounting_record(
    job: Json,
    state: SchedulerState,
    raw_state: str,
    exit_signal: tuple[int | None, int | None],
    count: Callable[[object], int | None] = as_int,
) -> AccountingRecord:
    """A slurmdb job as status + usage: the fields every version names alike.

    Allocated TRES in ``tres.allocated`` (``cpu``, ``billing``), elapsed in
    ``time.elapsed``, CPU time per step (``steps[].time.total``; sacct sums the
    steps), max RSS in bytes per step in ``steps[].tres.requested.max``.
    """
    job_id = str(job.get("job_id"))
    exit_code, signal = exit_signal
    times = as_dict(job.get("time"))
    tres = {
        t.get("type"): as_int(t.get("count"))
        for t in map(as_dict, as_list(as_dict(job.get("tres")).get("allocated")))
    }
    steps = [as_dict(s) for s in as_list(job.get("steps"))]
    array = as_dict(job.get("array"))  # {"job_id": 0 for a plain job, "task_id": ...}
    array_id = array_id_of(count(array.get("job_id")))
    alloc_cpus = tres.get("cpu") or 0
    elapsed = as_int(times.get("elapsed")) or 0
    reason = as_str(as_dict(job.get("state")).get("reason"))
    status = JobStatus(
        job_id=job_id,
        state=state,
        raw_state=raw_state,
        exit_code=exit_code,
        signal=signal,
        reason=None if reason == "None" else reason,
        submit_time=epoch(times.get("submission")),
        start_time=epoch(times.get("start")),
        end_time=epoch(times.get("end")),
        name=as_str(job.get("name")),
        user=as_str(job.get("user")),
        array_job_id=array_id,
        array_task_id=count(array.get("task_id")),
    )
    usage = Usage(
        job_id=job_id,
        user=as_str(job.get("user")) or "",
        account=as_str(job.get("account")),
        partition=as_str(job.get("partition")),
        state=state,
        exit_code=exit_code,
        alloc_cpus=alloc_cpus,
        elapsed_seconds=elapsed,
        cpu_seconds=alloc_cpus * elapsed,
        total_cpu_seconds=_total_cpu(times, steps),
        billing=tres.get("billing"),
        max_rss_bytes=_max_rss(steps),
        submit_time=status.submit_time,
        start_time=status.start_time,
        end_time=status.end_time,
        array_job_id=array_id,
    )
    return AccountingRecord(status=status, usage=usage)


def _later(a: AccountingRecord, b: AccountingRecord) -> bool:
    ta, tb = a.status.submit_time, b.status.submit_time
    return ta is not None and (tb is None or ta >= tb)


def _seconds(obj: object) -> float:
    d = as_dict(obj)
    return float(as_int(d.get("seconds")) or 0) + (as_int(d.get("microseconds")) or 0) / 1e6


def _total_cpu(times: Json, steps: list[Json]) -> float | None:
    """User+system CPU seconds: the steps' sum (what sacct shows), else the job's own."""
    if steps:
        return round(sum(_seconds(as_dict(s.get("time")).get("total")) for s in steps), 6)
    if "total" in times:
        return _seconds(times.get("total"))
    return None


def _max_rss(steps: list[Json]) -> int | None:
    """Largest per-step maximum RSS in bytes, None if no step reported memory."""
    values = [
        as_int(t.get("count"))
        for s in steps
        for t in map(as_dict, as_list(as_dict(as_dict(s.get("tres")).get("requested")).get("max")))
        if t.get("type") == "mem"
    ]
    known = [v for v in values if v is not None]
    return max(known) if known else None
