"""slurmrestd OpenAPI dialects: request building and response parsing per API version.

The transport (:mod:`hpc_adapters.slurmrest`) only moves bytes; everything
that depends on the slurmrestd OpenAPI version (paths, the job description,
field names and encodings of responses) lives in a :class:`Dialect`.
:func:`dialect_for` picks one by version string, so v0.0.39/v0.0.40+ are added
by writing a class and registering it, without touching the transport.

Facts about v0.0.38 (Slurm 22.05.8), checked against the real server:

* ``/slurm/.../jobs``: ``exit_code`` is the raw wait status (768 = exit 3,
  9 = killed by signal 9); times are epoch ints where 0 means unset, and a
  running job's ``end_time`` is its *projected* end (start + limit).
* ``/slurmdb/.../jobs``: filter by job ids with ``step=1%2C2`` (commas must be
  percent-encoded: a raw comma answers 400 "Unable to parse query"; an id that
  is not a number makes slurmrestd 22.05 exit with "fatal: Bad job/step
  specified", so ids are validated first). ``users`` is not a known filter;
  ``start_time`` wants Slurm time syntax (``now-1hours``), not epoch.
  No match answers error 9003 "Nothing found", which means an empty list.
* slurmdb ``exit_code`` is ``{"status", "return_code"}`` but 22.05 reports
  ``SUCCESS``/0 for *every* normal exit (WIFEXITED), so for a FAILED job whose
  status is SUCCESS the exit code is unknown (``None``). Signals are right.
* Usage: allocated TRES in ``tres.allocated`` (``cpu``, ``billing``); elapsed in
  ``time.elapsed``; CPU time only per step (``steps[].time.total``, the job's
  own ``time.total`` is 0, sacct sums the steps); max RSS in bytes per step in
  ``steps[].tres.requested.max`` (type ``mem``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hpc_adapters.base import JobSpec, JobStatus, SchedulerState, Usage
from hpc_adapters.slurm.script import job_account, output_paths, render_batch_script
from hpc_adapters.slurm.states import parse_state, state_name

Json = dict[str, Any]

#: Numbers Slurm uses for "no value" (NO_VAL, INFINITE, NO_VAL64 truncated).
_NO_VALUES = frozenset({0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFE, 0xFFFFFFFFFFFFFFFF})
_JOB_ID = re.compile(r"^[0-9]{1,10}$")


@dataclass(frozen=True)
class SlurmApiError:
    """One entry of a response's ``errors`` array."""

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


def epoch(value: object) -> datetime | None:
    """Epoch seconds -> aware UTC datetime; 0, None and NO_VAL give None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    if value <= 0 or value in _NO_VALUES:
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def _int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value in _NO_VALUES:
        return None
    return value


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _dict(value: object) -> Json:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def wait_status(raw: object) -> tuple[int | None, int | None]:
    """Decode a raw wait status into (exit_code, signal)."""
    status = _int(raw)
    if status is None or status < 0:
        return None, None
    signal = status & 0x7F
    if signal:
        return None, signal
    return (status >> 8) & 0xFF, None


class Dialect:
    """Base of the per-version dialects; the paths take the version string."""

    version: str = ""

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

    # ----------------------------------------------------- version-specific ----
    def submit_body(self, spec: JobSpec, environment: Mapping[str, str]) -> Json:
        raise NotImplementedError

    def db_jobs_query(self, job_ids: Sequence[str]) -> str:
        raise NotImplementedError

    def parse_errors(self, body: Json) -> list[SlurmApiError]:
        raise NotImplementedError

    def parse_submit(self, body: Json) -> SubmitResult:
        raise NotImplementedError

    def parse_jobs(self, body: Json) -> list[JobStatus]:
        raise NotImplementedError

    def parse_db_jobs(self, body: Json) -> list[AccountingRecord]:
        raise NotImplementedError

    def parse_ping(self, body: Json) -> dict[str, str]:
        raise NotImplementedError


class V0038Dialect(Dialect):
    """OpenAPI v0.0.38 (Slurm 22.05): ``/slurm/v0.0.38`` and ``/slurmdb/v0.0.38``."""

    version = "v0.0.38"

    def submit_body(self, spec: JobSpec, environment: Mapping[str, str]) -> Json:
        """``{"script": ..., "job": {...}}``; v0.0.38 rejects a job without environment."""
        stdout, stderr = output_paths(spec)
        job: Json = {
            "name": spec.name,
            "current_working_directory": spec.workdir,
            "standard_output": stdout,
            "standard_error": stderr,
            "tasks": 1,
            "nodes": 1,
            "cpus_per_task": spec.cpus,
            "memory_per_node": spec.memory_mb,
            "time_limit": spec.time_limit_minutes,
            "requeue": False,
            "environment": dict(environment),
        }
        if spec.partition:
            job["partition"] = spec.partition
        account = job_account(spec)
        if account:
            job["account"] = account
        return {"script": render_batch_script(spec), "job": job}

    def db_jobs_query(self, job_ids: Sequence[str]) -> str:
        """Query string selecting ``job_ids`` (commas percent-encoded, ids validated)."""
        bad = [j for j in job_ids if not valid_job_id(j)]
        if bad or not job_ids:
            raise ValueError(f"not Slurm job ids: {bad!r}")
        return "step=" + "%2C".join(job_ids)

    def parse_errors(self, body: Json) -> list[SlurmApiError]:
        """Entries of ``errors``: ``error_number`` (queries) or ``error_code`` (submit)."""
        out = []
        for entry in _list(body.get("errors")):
            item = _dict(entry)
            code = _int(item.get("error_number", item.get("error_code")))
            parts = [_str(item.get("error")), _str(item.get("description"))]
            text = ": ".join(dict.fromkeys(p for p in parts if p)) or "unspecified error"
            out.append(SlurmApiError(code=code, message=text))
        return out

    def parse_submit(self, body: Json) -> SubmitResult:
        """``job_id`` (present even with warnings such as a held job) and errors."""
        job_id = _int(body.get("job_id"))
        return SubmitResult(
            job_id=str(job_id) if job_id is not None else None,
            errors=tuple(self.parse_errors(body)),
        )

    def parse_jobs(self, body: Json) -> list[JobStatus]:
        """Every job of a ``GET /slurm/v0.0.38/jobs`` answer."""
        return [self._job_status(_dict(j)) for j in _list(body.get("jobs"))]

    @staticmethod
    def _job_status(job: Json) -> JobStatus:
        raw = job.get("job_state")
        state = parse_state(raw if isinstance(raw, (str, list)) else None)
        final = not state.active
        exit_code, signal = wait_status(job.get("exit_code")) if final else (None, None)
        reason = _str(job.get("state_reason"))
        return JobStatus(
            job_id=str(job.get("job_id")),
            state=state,
            raw_state=state_name(raw if isinstance(raw, (str, list)) else None),
            exit_code=exit_code,
            signal=signal,
            reason=None if reason == "None" else reason,
            submit_time=epoch(job.get("submit_time")),
            start_time=epoch(job.get("start_time")) if state.started else None,
            end_time=epoch(job.get("end_time")) if final else None,
            name=_str(job.get("name")),
            user=_str(job.get("user_name")),
        )

    def parse_db_jobs(self, body: Json) -> list[AccountingRecord]:
        """Every job of a ``GET /slurmdb/v0.0.38/jobs`` answer; a requeued job's
        several records collapse to the latest one."""
        latest: dict[str, AccountingRecord] = {}
        for item in _list(body.get("jobs")):
            record = self._accounting(_dict(item))
            previous = latest.get(record.status.job_id)
            if previous is None or _later(record, previous):
                latest[record.status.job_id] = record
        return list(latest.values())

    @staticmethod
    def _accounting(job: Json) -> AccountingRecord:
        job_id = str(job.get("job_id"))
        state_obj = _dict(job.get("state"))
        raw = _str(state_obj.get("current"))
        state = parse_state(raw)
        exit_code, signal = _db_exit_code(_dict(job.get("exit_code")), state)
        times = _dict(job.get("time"))
        tres = {
            t.get("type"): _int(t.get("count"))
            for t in map(_dict, _list(_dict(job.get("tres")).get("allocated")))
        }
        steps = [_dict(s) for s in _list(job.get("steps"))]
        alloc_cpus = tres.get("cpu") or 0
        elapsed = _int(times.get("elapsed")) or 0
        reason = _str(state_obj.get("reason"))
        status = JobStatus(
            job_id=job_id,
            state=state,
            raw_state=raw or "",
            exit_code=exit_code,
            signal=signal,
            reason=None if reason == "None" else reason,
            submit_time=epoch(times.get("submission")),
            start_time=epoch(times.get("start")),
            end_time=epoch(times.get("end")),
            name=_str(job.get("name")),
            user=_str(job.get("user")),
        )
        usage = Usage(
            job_id=job_id,
            user=_str(job.get("user")) or "",
            account=_str(job.get("account")),
            partition=_str(job.get("partition")),
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
        )
        return AccountingRecord(status=status, usage=usage)

    def parse_ping(self, body: Json) -> dict[str, str]:
        """Facts from ``/ping``: Slurm release and each controller's answer."""
        meta = _dict(body.get("meta"))
        facts = {
            "api_version": self.version,
            "slurm_release": str(_dict(meta.get("Slurm")).get("release", "")),
        }
        for ping in map(_dict, _list(body.get("pings"))):
            host = str(ping.get("hostname", "?"))
            facts[f"controller.{host}"] = f"{ping.get('ping')} ({ping.get('mode')})"
        return facts


def _later(a: AccountingRecord, b: AccountingRecord) -> bool:
    ta, tb = a.status.submit_time, b.status.submit_time
    return ta is not None and (tb is None or ta >= tb)


def _db_exit_code(ec: Json, state: SchedulerState) -> tuple[int | None, int | None]:
    """(exit_code, signal) from slurmdb's ``{"status", "return_code", "signal"}``."""
    status = ec.get("status")
    if status == "SIGNALED":
        return None, _int(_dict(ec.get("signal")).get("signal_id"))
    if status == "SUCCESS":
        # 22.05 says SUCCESS for every normal exit: only believe it when the job succeeded
        # or did not fail on its own (a FAILED job exited non-zero: code unknown).
        return (None, None) if state is SchedulerState.FAILED else (0, None)
    if status == "ERROR":
        return _int(ec.get("return_code")), None
    return None, None


def _seconds(obj: object) -> float:
    d = _dict(obj)
    return float(_int(d.get("seconds")) or 0) + (_int(d.get("microseconds")) or 0) / 1e6


def _total_cpu(times: Json, steps: list[Json]) -> float | None:
    """User+system CPU seconds: the steps' sum (what sacct shows), else the job's own."""
    if steps:
        return round(sum(_seconds(_dict(s.get("time")).get("total")) for s in steps), 6)
    if "total" in times:
        return _seconds(times.get("total"))
    return None


def _max_rss(steps: list[Json]) -> int | None:
    """Largest per-step maximum RSS in bytes, None if no step reported memory."""
    values = [
        _int(t.get("count"))
        for s in steps
        for t in map(_dict, _list(_dict(_dict(s.get("tres")).get("requested")).get("max")))
        if t.get("type") == "mem"
    ]
    known = [v for v in values if v is not None]
    return max(known) if known else None


_DIALECTS: dict[str, type[Dialect]] = {V0038Dialect.version: V0038Dialect}


def dialect_for(version: str) -> Dialect:
    """The dialect for an OpenAPI version (``"v0.0.38"`` or ``"0.0.38"``)."""
    key = version if version.startswith("v") else f"v{version}"
    try:
        return _DIALECTS[key]()
    except KeyError:
        supported = ", ".join(sorted(_DIALECTS))
        raise ValueError(
            f"unsupported slurmrestd OpenAPI version {version!r} (supported: {supported})"
        ) from None


def supported_versions() -> list[str]:
    """Versions :func:`dialect_for` knows."""
    return sorted(_DIALECTS)
