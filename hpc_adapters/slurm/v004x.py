"""slurmrestd OpenAPI v0.0.40, v0.0.41 and v0.0.42 (Slurm 23.11 to 24.11).

The three versions Slurm 24.11 serves share one data model, written here
against the real 24.11.5 server (its ``/openapi/v3`` document and answers):

* Numbers that may be unset are ``{"set", "infinite", "number"}`` structs
  (times, time limit, memory, exit return code, signal id); an unset or
  infinite one means "no value".
* ``job_state`` and slurmdb ``state.current`` are lists of flags
  (``["CANCELLED", "COMPLETING"]``); exit codes are
  ``{"status": ["ERROR"], "return_code": {…3}, "signal": {"id": {…}, "name"}}``
  and, unlike 22.05, ``ERROR`` carries the real return code.
* Submission: ``{"job": {..., "script": ...}}`` (the top-level ``script`` is
  deprecated from v0.0.41); ``environment`` is a list of ``NAME=value``;
  ``nodes`` is a range string; ``time_limit``/``memory_per_node`` are structs.
  Errors as in 22.05: HTTP 500 with ``errors[].error_number`` (2000 partition,
  2045 account).
* A conditional ``GET /jobs?update_time=T`` with nothing changed answers HTTP
  200 with no jobs and the warning "No job changes since update_time…"
  (22.05 answered 304). v0.0.42 takes ``T`` as epoch seconds; v0.0.40/41 refuse
  an epoch (HTTP 422, error 9202) and take Slurm's time syntax (``now-30``).
* slurmdb jobs of several ids: one ``step=`` parameter per id (a comma, raw or
  percent-encoded, answers 400/422); no match is an empty list, not an error.
* Cancel (``DELETE /job/{id}``) answers HTTP 200 in every case. v0.0.42 lists
  per-job outcomes in ``status[].error`` (2017 unknown or purged, 2021 already
  ended, 2002 another user's job); v0.0.40/41 report nothing, so the adapter
  reads the job back (:attr:`Dialect.cancel_reports_outcome`).
* ``/ping`` names release and cluster (``meta.slurm.release``, ``.cluster``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime

from hpc_adapters.base import JobSpec, JobStatus, SchedulerState
from hpc_adapters.slurm.dialect_base import (
    AccountingRecord,
    Dialect,
    Json,
    SlurmApiError,
    accounting_record,
    as_dict,
    as_int,
    as_list,
    as_str,
    checked_ids,
    epoch,
    live_status,
)
from hpc_adapters.slurm.script import array_range, job_account, output_paths, render_batch_script
from hpc_adapters.slurm.states import parse_state, state_name

_NO_CHANGE = "No job changes since"


def number(value: object) -> int | None:
    """The number of a ``{"set", "infinite", "number"}`` struct (None if unset/infinite)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return as_int(value)  # some fields are plain integers
    struct = as_dict(value)
    if struct.get("set") is not True or struct.get("infinite") is True:
        return None
    return as_int(struct.get("number"))


def when(value: object) -> datetime | None:
    """A time field (struct or plain epoch) as an aware UTC datetime."""
    return epoch(number(value))


def set_number(value: int) -> Json:
    """A ``{"set": true, "number": value}`` struct for a request body."""
    return {"set": True, "infinite": False, "number": value}


def exit_of(value: object, state: SchedulerState | None = None) -> tuple[int | None, int | None]:
    """(exit_code, signal) of a ``{"status", "return_code", "signal"}`` struct."""
    ec = as_dict(value)
    flags = {f for f in as_list(ec.get("status")) if isinstance(f, str)}
    if flags & {"SIGNALED", "CORE_DUMPED"}:
        return None, number(as_dict(ec.get("signal")).get("id"))
    code = number(ec.get("return_code"))
    if "ERROR" in flags:
        return code, None
    if "SUCCESS" in flags:
        # A job that failed on its own but reports SUCCESS/0 (seen for launch
        # failures): the code is unknown rather than a misleading 0.
        return (None, None) if state is SchedulerState.FAILED else (code or 0, None)
    return None, None


class V0040Dialect(Dialect):
    """OpenAPI v0.0.40 (Slurm 23.11, 24.05, 24.11)."""

    version = "v0.0.40"
    cancel_reports_outcome = False

    def submit_body(self, spec: JobSpec, environment: Mapping[str, str]) -> Json:
        """``{"job": {...}}`` with the script inside the job description."""
        stdout, stderr = output_paths(spec)
        job: Json = {
            "name": spec.name,
            "script": render_batch_script(spec),
            "current_working_directory": spec.workdir,
            "standard_output": stdout,
            "standard_error": stderr,
            "tasks": 1,
            "nodes": "1",
            "cpus_per_task": spec.cpus,
            "memory_per_node": set_number(spec.memory_mb),
            "time_limit": set_number(spec.time_limit_minutes),
            "requeue": False,
            "environment": [f"{name}={value}" for name, value in environment.items()],
        }
        if spec.array_size is not None:
            job["array"] = array_range(spec)
        if spec.partition:
            job["partition"] = spec.partition
        account = job_account(spec)
        if account:
            job["account"] = account
        return {"job": job}

    def db_jobs_query(self, job_ids: Sequence[str]) -> str:
        """One ``step=`` parameter per id (ids validated: digits only)."""
        return "&".join(f"step={job_id}" for job_id in checked_ids(job_ids))

    def update_time_query(self, since: int, now: float) -> str:
        """``update_time=now-N``: 24.11's v0.0.40/41 parsers refuse an epoch here
        ("Parsing of … for timestamp failed", HTTP 422) but take Slurm's time
        syntax; relative to the server's own clock, so no clock skew either."""
        return f"update_time=now-{max(1, math.ceil(now - since))}"

    def not_modified(self, status: int, body: Json) -> bool:
        """HTTP 200, no jobs, and the "No job changes since" warning (or a 304)."""
        if status == 304:
            return True
        if as_list(body.get("jobs")):
            return False
        texts = (as_str(as_dict(w).get("description")) for w in as_list(body.get("warnings")))
        return any(t is not None and t.startswith(_NO_CHANGE) for t in texts)

    def parse_jobs(self, body: Json) -> list[JobStatus]:
        jobs = map(as_dict, as_list(body.get("jobs")))
        return [live_status(j, when, exit_of, number) for j in jobs]

    def number(self, value: object) -> int | None:
        """Counts and times are ``{"set", "infinite", "number"}`` structs."""
        return number(value)

    def accounting(self, job: Json) -> AccountingRecord:
        raw = as_dict(job.get("state")).get("current")
        raw_state = raw if isinstance(raw, (str, list)) else None
        state = parse_state(raw_state)
        exit_signal = exit_of(job.get("exit_code"), state)
        return accounting_record(job, state, state_name(raw_state), exit_signal, number)

    def parse_ping(self, body: Json) -> dict[str, str]:
        """Facts from ``/ping``: release, cluster name, each controller's answer."""
        slurm = as_dict(as_dict(body.get("meta")).get("slurm"))
        facts = {"dialect": self.version, "slurm_release": str(slurm.get("release", ""))}
        cluster = as_str(slurm.get("cluster"))
        if cluster:
            facts["cluster"] = cluster
        for ping in map(as_dict, as_list(body.get("pings"))):
            host = str(ping.get("hostname", "?"))
            answer = ping.get("pinged", ping.get("ping"))
            facts[f"controller.{host}"] = f"{answer} ({ping.get('mode')})"
        return facts


class V0041Dialect(V0040Dialect):
    """OpenAPI v0.0.41 (Slurm 24.05, 24.11): the v0.0.40 model, cancel still silent."""

    version = "v0.0.41"


class V0042Dialect(V0040Dialect):
    """OpenAPI v0.0.42 (Slurm 24.11): cancel reports each outcome in ``status``."""

    version = "v0.0.42"
    cancel_reports_outcome = True

    def update_time_query(self, since: int, now: float) -> str:
        """v0.0.42 takes the epoch itself."""
        return f"update_time={since}"

    def cancel_errors(self, body: Json) -> list[SlurmApiError]:
        """``errors`` plus every ``status[].error`` whose code is not 0."""
        out = self.parse_errors(body)
        for entry in map(as_dict, as_list(body.get("status"))):
            error = as_dict(entry.get("error"))
            code = as_int(error.get("code"))
            if code:
                text = as_str(error.get("message")) or as_str(error.get("string")) or "error"
                out.append(SlurmApiError(code=code, message=text))
        return out
