"""One small command object per Slurm CLI verb, and the pure functions that parse their output.

Every command renders ONE shell line for the login node's POSIX shell, with
``shlex.quote`` on every value (option values come quoted from
:func:`~hpc_adapters.slurm.script.sbatch_options`), and parses a
:class:`CommandResult` into typed records. Output is decoded as UTF-8 and DOS
line endings are normalised first (:func:`normalise_text`).

Times are requested as epoch seconds (``SLURM_TIME_FORMAT=%s``), so no time
zone is guessed. Facts about Slurm 22.05's CLI (and where 24.11 differs),
checked on the dev clusters:

* ``squeue -O Field:0|,...`` prints unpadded fields separated by ``|``;
  ``exit_code`` is the raw wait status (768 = exit 3), as in slurmrestd; 24.11
  prints ``code:signal`` (``3:0``) instead.
  ``squeue -j`` with a single unknown id exits 1 with ``Invalid job id
  specified``; with several ids the unknown ones are just missing.
* ``sacct`` (in :mod:`.sacct`): ``-j`` without ``-S`` searches all time; an
  unknown id prints nothing.
* ``scancel`` exits 0 for unknown and already-ended jobs and says why only
  with ``-v``; another user's job gives exit 1 ``Access/permission denied``.
* ``sbatch --parsable`` prints ``id`` or ``id;cluster``; refusals exit 1 with
  ``sbatch: error: Batch job submission failed: <reason>``.
"""

from __future__ import annotations

import enum
import logging
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hpc_adapters.base import JobSpec, JobStatus
from hpc_adapters.errors import JobRejectedError, SchedulerBusyError
from hpc_adapters.slurm.dialect_base import checked_names
from hpc_adapters.slurm.dialects import epoch, valid_job_id, wait_status
from hpc_adapters.slurm.script import render_batch_script, sbatch_options
from hpc_adapters.slurm.states import parse_state

log = logging.getLogger(__name__)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Output of Slurm commands that means "the controller/database is not answering".
_BUSY_PATTERNS = (
    "unable to contact slurm controller",
    "socket timed out",
    "temporarily unable",
    "zero bytes were transmitted",
    "communication connection failure",
    "connection refused",
    "standby mode",
    "try again",
    "slurmdbd",
)
_NO_TIME = {"", "Unknown", "None", "N/A", "0"}
#: Prefix making Slurm print times as epoch seconds (no time zone to guess).
EPOCH_TIMES = "env " + shlex.quote("SLURM_TIME_FORMAT=%s")


@dataclass(frozen=True)
class CommandResult:
    """What one remote command returned (text already normalised)."""

    exit_status: int
    stdout: str
    stderr: str


def normalise_text(raw: bytes) -> str:
    """Decode remote output: UTF-8 (invalid bytes replaced), CRLF and lone CR -> LF."""
    return raw.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def quoted_ids(job_ids: Sequence[str]) -> str:
    bad = [j for j in job_ids if not valid_job_id(j)]
    if bad or not job_ids:
        raise ValueError(f"not Slurm job ids: {bad!r}")
    return shlex.quote(",".join(job_ids))


def _busy(text: str) -> bool:
    low = text.lower()
    return any(p in low for p in _BUSY_PATTERNS)


def _errors(result: CommandResult) -> str:
    lines = [ln.strip() for ln in result.stderr.splitlines() if ln.strip()]
    return "; ".join(lines[-3:]) or f"exit status {result.exit_status}"


def check_ran(verb: str, result: CommandResult) -> None:
    """Raise SchedulerBusyError when a query command failed."""
    if result.exit_status == 127:
        raise SchedulerBusyError(f"{verb} is not installed on the login node (exit 127)")
    if result.exit_status != 0:
        raise SchedulerBusyError(f"{verb} failed: {_errors(result)}")


# ----------------------------------------------------------------- sbatch ----


class Sbatch:
    """``env -i <environment> <sbatch of the login PATH> --export=ALL --parsable <options>``,
    script on stdin.

    ``env -i`` gives the job exactly ``environment`` (plus Slurm's own
    variables), as slurmrestd's job description does, whatever the user's
    login environment holds (e.g. ``SBATCH_*`` variables). Two things of the
    login node's environment are kept: *which* ``sbatch`` (resolved on the
    login PATH before the environment is cleared — a site's Slurm may live in
    ``/opt/slurm/bin``) and ``SLURM_CONF`` when the login node sets it (a site
    whose configuration is not at the compiled-in place).
    """

    verb = "sbatch"
    idempotent = False

    def __init__(self, spec: JobSpec, environment: Mapping[str, str]) -> None:
        bad = [k for k in environment if not _ENV_NAME.match(k)]
        if bad:
            raise JobRejectedError(f"invalid environment variable names: {bad!r}")
        try:
            self.options = sbatch_options(spec)
        except ValueError as exc:
            raise JobRejectedError(str(exc)) from exc
        self.environment = dict(environment)
        self.script = render_batch_script(spec).replace("\r\n", "\n")

    def line(self) -> str:
        env = " ".join(shlex.quote(f"{k}={v}") for k, v in self.environment.items())
        opts = " ".join(self.options)
        keep_conf = '${SLURM_CONF:+"SLURM_CONF=$SLURM_CONF"}'
        return f'env -i {env} {keep_conf} "$(command -v sbatch)" --export=ALL --parsable {opts}'

    def stdin(self) -> bytes:
        return self.script.encode()

    def parse(self, result: CommandResult) -> str:
        return parse_sbatch(result)


def parse_sbatch(result: CommandResult) -> str:
    """The job id ``sbatch --parsable`` printed; JobRejectedError/SchedulerBusyError otherwise."""
    if result.exit_status == 0:
        for line in reversed(result.stdout.splitlines()):
            job_id = line.strip().split(";", 1)[0]
            if valid_job_id(job_id):
                return job_id
        raise SchedulerBusyError(f"sbatch answered without a job id: {result.stdout[:200]!r}")
    detail = _errors(result)
    if result.exit_status == 127:
        raise SchedulerBusyError(f"sbatch is not installed on the login node: {detail}")
    if _busy(detail):
        raise SchedulerBusyError(f"submission failed, try again: {detail}")
    raise JobRejectedError(f"Slurm rejected the job: {detail}")


# ----------------------------------------------------------------- squeue ----

SQUEUE_FIELDS = (
    "JobID",
    "State",
    "exit_code",
    "Reason",
    "UserName",
    "SubmitTime",
    "StartTime",
    "EndTime",
    "ArrayJobID",
    "ArrayTaskID",
    "Name",
)


class Squeue:
    """``squeue`` for some job ids (all states) or for one job name."""

    verb = "squeue"
    idempotent = True

    def __init__(
        self, job_ids: Sequence[str] = (), name: str | None = None, names: Sequence[str] = ()
    ) -> None:
        self.job_ids = list(job_ids)
        self.name = name
        self.filter = f"-j {quoted_ids(self.job_ids)}" if self.job_ids else ""
        if name is not None and "," not in name:  # -n takes a list: filter locally then
            self.filter = f"-n {shlex.quote(name)}"
        if names:
            self.filter = f"-n {shlex.quote(','.join(checked_names(names)))}"

    def line(self) -> str:
        fmt = ",".join(f"{f}:0|" for f in SQUEUE_FIELDS[:-1]) + f",{SQUEUE_FIELDS[-1]}:0"
        return f"{EPOCH_TIMES} squeue --noheader -t all {self.filter} -O {shlex.quote(fmt)}"

    def stdin(self) -> bytes | None:
        return None

    def parse(self, result: CommandResult) -> list[JobStatus]:
        if result.exit_status == 1 and "invalid job id" in result.stderr.lower():
            return []  # a single unknown id: nothing live
        check_ran(self.verb, result)
        jobs = parse_squeue(result.stdout)
        if self.name is not None:
            jobs = [j for j in jobs if j.name == self.name]
        return jobs


def epoch_text(text: str) -> int | None:
    text = text.strip()
    if text in _NO_TIME or not text.isdigit():
        return None
    return int(text)


def squeue_exit(text: str) -> tuple[int | None, int | None]:
    """(exit_code, signal) of squeue's ``exit_code`` field: the raw wait status
    (22.05: ``768`` = exit 3) or ``code:signal`` (24.11: ``3:0``, ``0:9``)."""
    code, colon, sig = text.strip().partition(":")
    if not colon:
        return wait_status(int(code)) if code.lstrip("-").isdigit() else (None, None)
    if not (code.isdigit() and sig.isdigit()):
        return None, None
    return (None, int(sig)) if int(sig) else (int(code), None)


def parse_squeue(text: str) -> list[JobStatus]:
    """Rows of ``squeue -O`` with :data:`SQUEUE_FIELDS`; malformed rows are skipped."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split("|", len(SQUEUE_FIELDS) - 1)
        if len(parts) != len(SQUEUE_FIELDS) or not valid_job_id(parts[0].strip()):
            log.warning("skipping unexpected squeue line %r", line[:200])
            continue
        job_id, raw, code, reason, user, submit, start, end, array_job, array_task, name = parts
        state = parse_state(raw.strip())
        final = not state.active
        exit_code, signal = squeue_exit(code) if final else (None, None)
        out.append(
            JobStatus(
                job_id=job_id.strip(),
                state=state,
                raw_state=raw.strip(),
                exit_code=exit_code,
                signal=signal,
                reason=None if reason.strip() in ("", "None") else reason.strip(),
                submit_time=epoch(epoch_text(submit)),
                start_time=epoch(epoch_text(start)) if state.started else None,
                end_time=epoch(epoch_text(end)) if final else None,
                name=name or None,
                user=user.strip() or None,
                **array_fields(array_job, array_task),
            )
        )
    return out


def array_fields(array_job: str, array_task: str) -> dict[str, Any]:
    """``array_job_id``/``array_task_id`` of a JobStatus from squeue's ``ArrayJobID``
    and ``ArrayTaskID`` (``N/A`` for a plain job, ``1-5%1`` for pending tasks)."""
    task = array_task.strip()
    if task in ("", "N/A") or not array_job.strip().isdigit():
        return {}
    return {
        "array_job_id": array_job.strip(),
        "array_task_id": int(task) if task.isdigit() else None,
    }


# ---------------------------------------------------------------- scancel ----


class CancelOutcome(enum.Enum):
    """What ``scancel -v`` said about one job."""

    SIGNALLED = "signalled"
    ALREADY_DONE = "already done"
    NOT_IN_CONTROLLER = "not in controller"  # ended and purged, or never existed
    DENIED = "denied"


class Scancel:
    """``scancel -v <id>`` (SIGKILL with Slurm's TERM-then-KILL cancel semantics)."""

    verb = "scancel"
    idempotent = True

    def __init__(self, job_id: str) -> None:
        self.ids = quoted_ids([job_id])

    def line(self) -> str:
        return f"scancel -v {self.ids}"

    def stdin(self) -> bytes | None:
        return None

    def parse(self, result: CommandResult) -> CancelOutcome:
        return parse_scancel(result)


def parse_scancel(result: CommandResult) -> CancelOutcome:
    """Classify ``scancel -v`` output; SchedulerBusyError for anything unexpected."""
    text = result.stderr.lower()
    if "access/permission denied" in text:
        return CancelOutcome.DENIED
    if "invalid job id specified" in text:
        return CancelOutcome.NOT_IN_CONTROLLER
    if "already completing or completed" in text:
        return CancelOutcome.ALREADY_DONE
    if result.exit_status != 0 or "error:" in text:
        raise SchedulerBusyError(f"scancel failed: {_errors(result)}")
    return CancelOutcome.SIGNALLED


# ------------------------------------------------------------------ probe ----


class Probe:
    """``sinfo --version``, the cluster name and ``scontrol ping`` for ``hpcgw sites check``."""

    verb = "sinfo"
    idempotent = True

    def line(self) -> str:
        # The exit status is scontrol ping's: non-zero when the controller is down.
        return (
            "sinfo --version && { scontrol show config 2>/dev/null | grep '^ClusterName '; "
            "scontrol ping; }"
        )

    def stdin(self) -> bytes | None:
        return None

    def parse(self, result: CommandResult) -> dict[str, str]:
        return parse_probe(result)


def parse_probe(result: CommandResult) -> dict[str, str]:
    """``slurm-wlm 22.05.8`` -> ``slurm_release``; each ``Slurmctld(...) at H is UP`` line."""
    lines = [ln.strip() for ln in result.stdout.splitlines() if ln.strip()]
    if result.exit_status == 127 or not lines:
        raise SchedulerBusyError(f"Slurm commands do not answer: {_errors(result)}")
    facts = {"slurm_release": lines[0].split()[-1], "dialect": "cli"}
    for line in lines[1:]:
        m = re.match(r"Slurmctld\((\w+)\) at (\S+) is (\w+)", line)
        if m:
            facts[f"controller.{m.group(2)}"] = f"{m.group(3)} ({m.group(1)})"
        cluster = re.match(r"ClusterName\s*=\s*(\S+)", line)
        if cluster:
            facts["cluster"] = cluster.group(1)
    if result.exit_status != 0:
        facts["controller_error"] = _errors(result)
    return facts
