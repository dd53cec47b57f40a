"""slurmrestd OpenAPI v0.0.38 (Slurm 22.05): ``/slurm/v0.0.38`` and ``/slurmdb/v0.0.38``.

Facts checked against the real server (Slurm 22.05.8):

* ``/slurm/.../jobs``: ``exit_code`` is the raw wait status (768 = exit 3,
  9 = killed by signal 9); times are epoch ints where 0 means unset, and a
  running job's ``end_time`` is its *projected* end (start + limit). A
  conditional ``GET /jobs?update_time=T`` answers HTTP 304 (empty body) when
  nothing changed.
* ``/slurmdb/.../jobs``: filter by job ids with ``step=1%2C2`` (commas must be
  percent-encoded: a raw comma answers 400 "Unable to parse query"; an id that
  is not a number makes slurmrestd 22.05 exit with "fatal: Bad job/step
  specified", so ids are validated first). ``users`` is not a known filter;
  ``start_time`` wants Slurm time syntax (``now-1hours``), not epoch.
  No match answers error 9003 "Nothing found", which means an empty list.
* slurmdb ``exit_code`` is ``{"status", "return_code"}`` but 22.05 reports
  ``SUCCESS``/0 for *every* normal exit (WIFEXITED), so for a FAILED job whose
  status is SUCCESS the exit code is unknown (``None``). Signals are right.
* Cancel (``DELETE /job/{id}``) reports failures in ``errors`` (HTTP 500):
  2017 for an unknown or purged job, 2002 for another user's job.
* ``/ping`` names the release (``meta.Slurm.release``) but not the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hpc_adapters.base import JobSpec, JobStatus, SchedulerState
from hpc_adapters.slurm.dialect_base import (
    AccountingRecord,
    Dialect,
    Json,
    accounting_record,
    as_dict,
    as_int,
    as_list,
    as_str,
    checked_ids,
    epoch,
    live_status,
    wait_status,
)
from hpc_adapters.slurm.script import array_range, job_account, output_paths, render_batch_script
from hpc_adapters.slurm.states import parse_state


class V0038Dialect(Dialect):
    """OpenAPI v0.0.38 (Slurm 22.05)."""

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
        if spec.array_size is not None:
            job["array"] = array_range(spec)
        if spec.partition:
            job["partition"] = spec.partition
        account = job_account(spec)
        if account:
            job["account"] = account
        return {"script": render_batch_script(spec), "job": job}

    def db_jobs_query(self, job_ids: Sequence[str]) -> str:
        """Query string selecting ``job_ids`` (commas percent-encoded, ids validated)."""
        return "step=" + "%2C".join(checked_ids(job_ids))

    def parse_jobs(self, body: Json) -> list[JobStatus]:
        """Every job of a ``GET /slurm/v0.0.38/jobs`` answer."""
        return [live_status(as_dict(j), epoch, wait_status) for j in as_list(body.get("jobs"))]

    def accounting(self, job: Json) -> AccountingRecord:
        state_obj = as_dict(job.get("state"))
        raw = as_str(state_obj.get("current"))
        state = parse_state(raw)
        exit_signal = _db_exit_code(as_dict(job.get("exit_code")), state)
        return accounting_record(job, state, raw or "", exit_signal)

    def parse_ping(self, body: Json) -> dict[str, str]:
        """Facts from ``/ping``: Slurm release and each controller's answer."""
        meta = as_dict(body.get("meta"))
        facts = {
            "dialect": self.version,
            "slurm_release": str(as_dict(meta.get("Slurm")).get("release", "")),
        }
        for ping in map(as_dict, as_list(body.get("pings"))):
            host = str(ping.get("hostname", "?"))
            facts[f"controller.{host}"] = f"{ping.get('ping')} ({ping.get('mode')})"
        return facts


def _db_exit_code(ec: Json, state: SchedulerState) -> tuple[int | None, int | None]:
    """(exit_code, signal) from slurmdb's ``{"status", "return_code", "signal"}``."""
    status = ec.get("status")
    if status == "SIGNALED":
        return None, as_int(as_dict(ec.get("signal")).get("signal_id"))
    if status == "SUCCESS":
        # 22.05 says SUCCESS for every normal exit: only believe it when the job succeeded
        # or did not fail on its own (a FAILED job exited non-zero: code unknown).
        return (None, None) if state is SchedulerState.FAILED else (0, None)
    if status == "ERROR":
        return as_int(ec.get("return_code")), None
    return None, None
