"""EXPERIMENTAL: the pyslurm transport, for a gateway running on a Slurm login node.

pyslurm wraps libslurm of exactly one Slurm release (its version is the Slurm
version: pyslurm 22.5.x needs libslurm 22.05). PyPI serves only recent
releases, so ``deploy/install-pyslurm.sh`` builds the matching one from its
git tag against ``libslurm-dev`` (pyslurm 22.5.3 for Debian 12's Slurm 22.05)
and the adapter passes the same contract suite as slurmrestd and SSH on the
dev cluster. It uses the object API that pyslurm 22.5.3 backported from 23.2
(``JobSubmitDescription``, ``Jobs``, ``Job``, ``db.Jobs``), so the same code
serves 22.5 through 25.11. ``pyslurm`` is imported lazily, when the adapter is
built; a missing library raises :class:`PyslurmUnavailable` with the reason.

Identity: libslurm speaks for the *process* (munge credential of its uid).
Submitting as the user sets ``user_id``/``group_id`` in the job description,
which slurmctld accepts only from root or ``SlurmUser``: the gateway worker
must run as one of them on the login node. Because that identity may cancel
any job, :meth:`PyslurmAdapter.cancel` first checks that the job belongs to the
caller. Workspace files use the shared filesystem
(:class:`~hpc_adapters.localfs.LocalWorkspace`), as with slurmrestd.

Errors: libslurm's errno decides the branch -- communication errnos
(1001-1004, 1800-1803, 5000-5005) are :class:`TransportError`, controller
standby and slurmdbd down are :class:`SchedulerBusyError`, anything else on
submission is :class:`JobRejectedError` (bad partition, account, limits).
"""

from __future__ import annotations

import importlib
import logging
import pwd
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, TypeVar

from hpc_adapters.base import HpcIdentity, JobSpec, JobStatus, SiteLoad, Usage, WorkspaceFiles
from hpc_adapters.errors import (
    AuthenticationError,
    InvalidJobError,
    JobRejectedError,
    SchedulerBusyError,
    TransientHpcError,
    TransportError,
)
from hpc_adapters.slurm.dialects import epoch, valid_job_id
from hpc_adapters.slurm.script import job_account, output_paths, render_batch_script
from hpc_adapters.slurm.states import parse_state, state_name
from hpc_adapters.slurm.statuses import merge_by_name

log = logging.getLogger(__name__)
T = TypeVar("T")

_INVALID_JOB = 2017
_ALREADY_DONE = 2021
_PERMISSION_DENIED = 2002
#: libslurm errnos meaning "could not talk to slurmctld/slurmdbd" (slurm_errno.h).
_COMMUNICATION = frozenset([*range(1001, 1005), *range(1800, 1804), *range(5000, 5006)])
#: Controller in standby (2027, 2131) or slurmdbd unreachable (7000): try later.
_BUSY = frozenset({2027, 2131, 7000})
DEFAULT_ENVIRONMENT = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


class PyslurmUnavailable(TransportError):
    """pyslurm (or a libslurm matching it) cannot be loaded on this host."""


def load_pyslurm(name: str = "pyslurm") -> ModuleType:
    """Import pyslurm now; PyslurmUnavailable with the reason when it cannot be."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise PyslurmUnavailable(
            f"the pyslurm adapter needs the 'pyslurm' package built for this host's Slurm"
            f" (pyslurm X.Y.* for Slurm X.Y; deploy/install-pyslurm.sh builds it): {exc}"
        ) from exc


# ---------------------------------------------------------- translation ----


def job_description(
    spec: JobSpec,
    login: str,
    environment: Mapping[str, str],
    getpwnam: Callable[[str], Any] = pwd.getpwnam,
) -> dict[str, Any]:
    """Keyword arguments for ``pyslurm.JobSubmitDescription`` (pyslurm >= 22.5.3 names).

    ``time_limit`` is an int: pyslurm 22.5 passes a digit *string* through to C
    unconverted ("an integer is required").
    """
    try:
        stdout, stderr = output_paths(spec)
        account = job_account(spec)
        entry = getpwnam(login)
    except ValueError as exc:
        raise JobRejectedError(str(exc)) from exc
    except KeyError:
        raise AuthenticationError(f"no such user on this host: {login!r}") from None
    env = {"HOME": spec.workdir, **environment, **spec.environment}
    desc: dict[str, Any] = {
        "name": spec.name,
        "script": render_batch_script(spec),
        "working_directory": spec.workdir,
        "standard_output": stdout,
        "standard_error": stderr,
        "ntasks": 1,
        "nodes": 1,
        "cpus_per_task": spec.cpus,
        "memory_per_node": f"{spec.memory_mb}M",
        "time_limit": spec.time_limit_minutes,
        "is_requeueable": False,
        "environment": env,
        "user_id": entry.pw_uid,
        "group_id": entry.pw_gid,
    }
    if spec.partition:
        desc["partitions"] = spec.partition
    if account:
        desc["account"] = account
    return desc


def _time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return epoch(value)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def job_status(job: Any) -> JobStatus:
    """A ``pyslurm.Job`` or ``pyslurm.db.Job`` (or any object with those attributes)."""
    raw = getattr(job, "state", None)
    raw_text = raw if isinstance(raw, (str, list)) else None
    state = parse_state(raw_text)
    final = not state.active
    signal = _int(getattr(job, "exit_code_signal", None)) if final else None
    exit_code = _int(getattr(job, "exit_code", None)) if final else None
    reason = _text(getattr(job, "state_reason", None))
    return JobStatus(
        job_id=str(getattr(job, "id", "")),
        state=state,
        raw_state=state_name(raw_text),
        exit_code=None if signal else exit_code,
        signal=signal or None,
        reason=None if reason == "None" else reason,
        submit_time=_time(getattr(job, "submit_time", None)),
        start_time=_time(getattr(job, "start_time", None)) if state.started else None,
        end_time=_time(getattr(job, "end_time", None)) if final else None,
        name=_text(getattr(job, "name", None)),
        user=_text(getattr(job, "user_name", None)),
    )


def job_usage(job: Any) -> Usage:
    """Usage from a ``pyslurm.db.Job`` (``stats`` holds CPU time and max RSS)."""
    status = job_status(job)
    stats = getattr(job, "stats", None)
    cpus = _int(getattr(job, "cpus", None)) or 0
    elapsed = _int(getattr(job, "elapsed_time", None)) or 0
    total_cpu = getattr(stats, "total_cpu_time", None)
    return Usage(
        job_id=status.job_id,
        user=status.user or "",
        account=_text(getattr(job, "account", None)),
        partition=_text(getattr(job, "partition", None)),
        state=status.state,
        exit_code=status.exit_code,
        alloc_cpus=cpus,
        elapsed_seconds=elapsed,
        cpu_seconds=cpus * elapsed,
        total_cpu_seconds=float(total_cpu) if isinstance(total_cpu, (int, float)) else None,
        max_rss_bytes=_int(getattr(stats, "max_resident_memory", None)),
        submit_time=status.submit_time,
        start_time=status.start_time,
        end_time=status.end_time,
    )


def _errno(exc: BaseException) -> int | None:
    return _int(getattr(exc, "errno", None))


def transient_error(exc: BaseException, what: str) -> TransientHpcError | None:
    """The transient error a libslurm failure stands for, or None if it is not transient."""
    code = _errno(exc)
    if code in _COMMUNICATION:
        return TransportError(f"{what}: cannot reach Slurm: {exc}")
    if code in _BUSY:
        return SchedulerBusyError(f"{what}: Slurm is not answering: {exc}")
    return None


def slurm_release(module: Any) -> str:
    """The libslurm release pyslurm was built for, e.g. ``22.05.8`` (``?`` if unknown)."""
    api = getattr(module, "slurm_api_version", None)
    version = api() if callable(api) else None
    if isinstance(version, tuple) and len(version) == 3:
        major, minor, micro = version
        return f"{major}.{minor:02d}.{micro}"
    return "?"


# -------------------------------------------------------------- adapter ----


class PyslurmAdapter:
    """EXPERIMENTAL :class:`~hpc_adapters.base.SchedulerAdapter` over libslurm (see module).

    ``on_call`` is told the name of every libslurm round trip (``submit``,
    ``jobs``, ``db.jobs``, ``cancel``, ``config``), as the SSH pool reports
    its commands: tests count scheduler calls with it.
    """

    experimental = True

    def __init__(
        self,
        site: str,
        files_factory: Callable[[HpcIdentity], WorkspaceFiles],
        *,
        module: ModuleType | Any | None = None,
        base_environment: Mapping[str, str] | None = None,
        getpwnam: Callable[[str], Any] = pwd.getpwnam,
        on_call: Callable[[str], None] | None = None,
    ) -> None:
        self.site = site
        self.files_factory = files_factory
        self.slurm = module if module is not None else load_pyslurm()
        self.base_environment = dict(base_environment or DEFAULT_ENVIRONMENT)
        self._getpwnam = getpwnam
        self._on_call = on_call
        self._rpc_error: type[BaseException] = getattr(self.slurm, "RPCError", RuntimeError)

    def _call(self, verb: str, fn: Callable[[], T]) -> T:
        """One libslurm round trip; transient failures become the tree's transient errors.

        Other RPC errors propagate for the caller to classify.
        """
        if self._on_call is not None:
            self._on_call(verb)
        try:
            return fn()
        except self._rpc_error as exc:
            transient = transient_error(exc, verb)
            if transient is not None:
                raise transient from exc
            raise

    def submit(self, spec: JobSpec, identity: HpcIdentity) -> str:
        """Submit as ``identity`` (``user_id``/``group_id``: needs root or SlurmUser).

        Job arrays are not supported through pyslurm here (its 22.5 job records
        do not tell an array's tasks apart reliably): JobRejectedError, before
        anything reaches Slurm; route tiled processes to a REST or SSH site."""
        if spec.array_size is not None:
            raise JobRejectedError(
                "job arrays (tiled processes) are not supported by the pyslurm adapter; "
                "run this process at a site reached over slurmrestd or SSH"
            )
        desc = job_description(spec, identity.login, self.base_environment, self._getpwnam)
        try:
            job_id = self._call("submit", lambda: self.slurm.JobSubmitDescription(**desc).submit())
        except self._rpc_error as exc:
            if _errno(exc) == _PERMISSION_DENIED:
                raise AuthenticationError(
                    f"Slurm refused to submit as {identity.login}: {exc}"
                ) from exc
            raise JobRejectedError(f"Slurm rejected the job: {exc}") from exc
        return str(job_id)

    def _live(self) -> list[JobStatus]:
        try:
            jobs = self._call("jobs", self.slurm.Jobs.load)
        except self._rpc_error as exc:
            raise SchedulerBusyError(f"slurmctld did not answer: {exc}") from exc
        return [job_status(j) for j in jobs.values()]

    def _accounting(self, job_ids: Sequence[str]) -> list[Any]:
        db = self.slurm.db
        filt = db.JobFilter(ids=[int(j) for j in job_ids])
        try:
            return list(self._call("db.jobs", lambda: db.Jobs.load(filt)).values())
        except self._rpc_error as exc:
            raise SchedulerBusyError(f"slurmdbd did not answer: {exc}") from exc

    def statuses(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        wanted = [j for j in dict.fromkeys(job_ids) if valid_job_id(j)]
        if not wanted:
            return {}
        found = {s.job_id: s for s in self._live() if s.job_id in wanted}
        missing = [j for j in wanted if j not in found]
        if missing:
            for job in self._accounting(missing):
                status = job_status(job)
                if status.job_id in wanted:
                    found[status.job_id] = status
        return found

    def find_by_name(self, name: str) -> list[JobStatus]:
        return [s for s in self._live() if s.name == name]

    def find_by_names(self, names: Sequence[str], since: datetime) -> dict[str, list[JobStatus]]:
        """One ``jobs`` RPC; names it lacks -> one slurmdbd query by name since ``since``."""

        def accounting(missing: list[str]) -> list[JobStatus]:
            db = self.slurm.db
            filt = db.JobFilter(names=missing, start_time=since)
            try:
                jobs = self._call("db.jobs", lambda: db.Jobs.load(filt))
            except self._rpc_error as exc:
                raise SchedulerBusyError(f"slurmdbd did not answer: {exc}") from exc
            return [job_status(job) for job in jobs.values()]

        return merge_by_name(names, lambda _: self._live(), accounting)

    def cancel(self, job_id: str, identity: HpcIdentity) -> None:
        """Cancel a job of ``identity``. The process may cancel anyone's job, so the
        owner is checked first; pyslurm hides unknown ids, so the controller and then
        accounting are asked before the cancel."""
        if not valid_job_id(job_id):
            raise InvalidJobError(f"not a Slurm job id: {job_id!r}")
        live = next((s for s in self._live() if s.job_id == job_id), None)
        if live is None:
            if self._accounting([job_id]):
                return  # ended and purged: nothing to do
            raise InvalidJobError(f"Slurm does not know job {job_id}")
        if live.user is not None and live.user != identity.login:
            raise AuthenticationError(f"job {job_id} does not belong to {identity.login}")
        if not live.state.active:
            return
        try:
            self._call("cancel", lambda: self.slurm.Job(int(job_id)).cancel())
        except self._rpc_error as exc:
            code = _errno(exc)
            if code in (_ALREADY_DONE, _INVALID_JOB):
                return
            if code == _PERMISSION_DENIED:
                raise AuthenticationError(f"Slurm refused to cancel {job_id}: {exc}") from exc
            raise SchedulerBusyError(f"cancel of {job_id} failed: {exc}") from exc

    def usages(self, job_ids: Iterable[str]) -> dict[str, Usage]:
        wanted = [j for j in dict.fromkeys(job_ids) if valid_job_id(j)]
        if not wanted:
            return {}
        usages = (job_usage(j) for j in self._accounting(wanted))
        return {u.job_id: u for u in usages if u.job_id in wanted}

    def files(self, identity: HpcIdentity) -> WorkspaceFiles:
        return self.files_factory(identity)

    def load(self) -> SiteLoad:
        """Not read through pyslurm yet: routing treats the queue as unknown."""
        return SiteLoad()

    def associations(self) -> dict[str, frozenset[str]]:
        """Not read through pyslurm yet: routing does not filter on associations."""
        return {}

    def check(self) -> dict[str, str]:
        """Versions, and the controller's job count (one ``jobs`` RPC: raises if down)."""
        version = str(getattr(self.slurm, "__version__", "?"))
        started = time.monotonic()
        jobs = len(self._live())
        return {
            "site": self.site,
            "transport": "pyslurm (experimental)",
            "slurm_release": slurm_release(self.slurm),
            "pyslurm_version": version,
            "dialect": f"pyslurm {version}",
            "rtt_ms": f"{(time.monotonic() - started) * 1000:.1f}",
            "jobs_in_controller": str(jobs),
        }

    def close(self) -> None:
        """Nothing to release: libslurm keeps no connection open."""
