"""The scheduler adapter contract: typed records and the two interfaces.

Error contract (see :mod:`hpc_adapters.errors` for the tree):

* every method may raise :class:`TransientHpcError` (transport down, scheduler
  busy): the caller retries later with backoff, the job is not at fault;
* :meth:`SchedulerAdapter.submit` raises :class:`JobRejectedError` or
  :class:`AuthenticationError` when the job can never be submitted as given;
* :meth:`SchedulerAdapter.cancel` raises :class:`InvalidJobError` for a job id
  the scheduler has never heard of; cancelling a job that already ended is a
  no-op, not an error;
* :meth:`SchedulerAdapter.statuses` and :meth:`SchedulerAdapter.usages` never
  raise for unknown ids: such ids are simply missing from the returned mapping;
* an adapter that cannot submit a job array (``JobSpec.array_size``) raises
  :class:`JobRejectedError` saying so, before anything reaches the scheduler.

Job arrays: the id ``submit`` returns for an array names the whole array.
``statuses``/``usages`` answer it as one job (states and accounting of every
task folded together by :mod:`hpc_adapters.arrays`) and ``cancel`` cancels
every task.

Monitoring calls (``statuses``, ``usages``) run with the site's service
identity; ``submit``, ``cancel`` and file operations run *as the user*.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable


class SchedulerState(StrEnum):
    """Scheduler-neutral job states; each dialect maps its own names here."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    COMPLETING = "COMPLETING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    UNKNOWN = "UNKNOWN"

    @property
    def active(self) -> bool:
        """True while the job may still run; UNKNOWN counts as active (never success)."""
        return self in _ACTIVE

    @property
    def succeeded(self) -> bool:
        return self is SchedulerState.COMPLETED

    @property
    def started(self) -> bool:
        """True once the job has (or had) compute allocated."""
        return self not in (SchedulerState.PENDING, SchedulerState.UNKNOWN)


_ACTIVE = frozenset(
    {
        SchedulerState.PENDING,
        SchedulerState.RUNNING,
        SchedulerState.SUSPENDED,
        SchedulerState.COMPLETING,
        SchedulerState.UNKNOWN,
    }
)


@dataclass(frozen=True)
class HpcIdentity:
    """Who a scheduler call acts as: the HPC login, plus a forwarded token if any.

    ``token`` is set only in *forward* mode, where the user's own OIDC token is
    presented to the site; otherwise the adapter mints or uses its own
    credential for ``login``.
    """

    login: str
    token: str | None = None


@dataclass(frozen=True)
class JobSpec:
    """A batch job, ready to submit. ``script`` is fully rendered (no user text in it)."""

    name: str
    script: str
    workdir: str
    cpus: int = 1
    memory_mb: int = 512
    time_limit_minutes: int = 10
    partition: str | None = None
    account: str | None = None
    stdout: str = "slurm.out"
    stderr: str = "slurm.err"
    environment: Mapping[str, str] = field(default_factory=dict)
    #: Run as ONE Slurm job array of this many tasks (indices ``0..n-1``, each with
    #: the resources above), or None for a plain job. The array is one submission
    #: with one name and one id (what :meth:`SchedulerAdapter.submit` returns);
    #: :meth:`~SchedulerAdapter.statuses`, :meth:`~SchedulerAdapter.usages` and
    #: :meth:`~SchedulerAdapter.cancel` then treat that id as the whole array.
    array_size: int | None = None


@dataclass(frozen=True)
class JobStatus:
    """What the scheduler says about one job at one moment."""

    job_id: str
    state: SchedulerState
    raw_state: str
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    submit_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    name: str | None = None
    user: str | None = None
    #: For one task of a job array: the array's id and the task's index. An
    #: adapter's ``statuses()`` answers the whole array under the array's id
    #: (:func:`hpc_adapters.arrays.collapse_statuses`), with ``array_tasks`` set.
    array_job_id: str | None = None
    array_task_id: int | None = None
    #: For a whole array: (tasks finished, tasks known); None for a plain job.
    array_tasks: tuple[int, int] | None = None


@dataclass(frozen=True)
class Usage:
    """Accounting for one finished job, as the scheduler's accounting reports it.

    ``cpu_seconds`` is the allocated-CPU time (Slurm ``CPUTimeRAW`` =
    allocated CPUs * elapsed); core-hours are ``cpu_seconds / 3600``.
    """

    job_id: str
    user: str
    account: str | None
    partition: str | None
    state: SchedulerState
    exit_code: int | None
    alloc_cpus: int
    elapsed_seconds: int
    cpu_seconds: int
    total_cpu_seconds: float | None = None
    billing: int | None = None
    max_rss_bytes: int | None = None
    submit_time: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    #: For one task of a job array: the array's id. ``usages()`` answers the
    #: whole array under its id, every task summed, ``tasks`` counting them.
    array_job_id: str | None = None
    tasks: int = 1

    @property
    def core_hours(self) -> float:
        return self.cpu_seconds / 3600.0


@runtime_checkable
class WorkspaceFiles(Protocol):
    """File operations in job workspaces on the cluster, acting as one user.

    Paths are absolute cluster paths and must lie under the site's workspace
    root; implementations raise :class:`WorkspaceError` otherwise.
    """

    def mkdir(self, path: str) -> None:
        """Create ``path`` (and parents under the root), owned by the user."""

    def write_bytes(self, path: str, data: bytes) -> None:
        """Create or replace a file atomically, owned by the user."""

    def put_file(self, local_path: str, path: str) -> None:
        """Copy a local file to ``path`` (streamed; for large staged inputs)."""

    def link_file(self, local_path: str, path: str) -> bool:
        """Place an immutable local file at ``path`` as a hard link, when safe and possible.

        For content-addressed cache objects (mode ``0444``, owned by the
        gateway): the job reads the very same inode and cannot change it.
        Returns False, having done nothing, when the file cannot be linked
        there (other filesystem, remote workspace, ownership or mode that
        would let the job write it): the caller then uses :meth:`put_file`.
        """

    def read_bytes(self, path: str, max_bytes: int) -> bytes | None:
        """Return the file's content, or ``None`` if it does not exist.

        Raises :class:`WorkspaceError` if it is larger than ``max_bytes``.
        """

    def get_file(self, path: str, local_path: str) -> None:
        """Copy ``path`` to a local file (streamed; for large outputs)."""

    def listdir(self, path: str) -> list[str]:
        """Names in a directory (empty if it does not exist)."""

    def is_regular_file(self, path: str) -> bool:
        """True for a regular file that is not a symlink."""

    def remove_tree(self, path: str) -> None:
        """Delete a workspace; a missing path is not an error."""


@dataclass(frozen=True)
class PartitionLoad:
    """How busy one partition is, from one look at the scheduler (for routing).

    ``pending_cpu_seconds`` is the work waiting in the queue: every pending job's
    CPUs x its time limit (held jobs included: they may be released at any time).
    """

    total_cpus: int
    busy_cpus: int = 0
    pending_jobs: int = 0
    pending_cpu_seconds: int = 0
    #: Seconds until the first running job reaches its time limit (None: none runs).
    soonest_end_seconds: int | None = None

    @property
    def idle_cpus(self) -> int:
        return max(0, self.total_cpus - self.busy_cpus)


@dataclass(frozen=True)
class SiteLoad:
    """Every partition's load, read in one or two scheduler calls (never one per job)."""

    partitions: Mapping[str, PartitionLoad] = field(default_factory=dict)
    #: The partition a job naming none runs in (Slurm's ``Default=YES``), when known.
    default_partition: str | None = None

    def partition(self, name: str | None) -> PartitionLoad | None:
        """The load of ``name``; None names the default partition (else the first listed)."""
        if name is None:
            name = self.default_partition or next(iter(self.partitions), None)
        return self.partitions.get(name) if name is not None else None


@runtime_checkable
class SchedulerAdapter(Protocol):
    """One HPC site seen through one transport. See the module docstring for errors."""

    site: str

    def submit(self, spec: JobSpec, identity: HpcIdentity) -> str:
        """Submit ``spec`` as ``identity``; return the scheduler's job id."""

    def statuses(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """Status of many jobs in ONE scheduler call (plus one accounting call at
        most for ids that have aged out of the controller)."""

    def find_by_name(self, name: str) -> list[JobStatus]:
        """Live jobs carrying ``name``."""

    def find_by_names(self, names: Sequence[str], since: datetime) -> dict[str, list[JobStatus]]:
        """Jobs named any of ``names``, live *or* already in accounting, submitted
        at or after ``since``: at most one controller and one accounting call.

        What makes submission at-most-once across crashes: a job whose submission
        outcome is unknown is looked up by its name and adopted when found.
        Names never submitted are missing from the result; if the site cannot
        answer, a TransientHpcError is raised (never an empty, "not found" answer).
        """

    def cancel(self, job_id: str, identity: HpcIdentity) -> None:
        """Cancel a pending or running job as its owner."""

    def usages(self, job_ids: Iterable[str]) -> dict[str, Usage]:
        """Accounting records of many finished jobs in one call."""

    def load(self) -> SiteLoad:
        """Queue and CPUs of every partition, in at most two scheduler calls.

        An adapter that cannot tell answers an empty :class:`SiteLoad`."""

    def associations(self) -> dict[str, frozenset[str]]:
        """HPC login -> the Slurm accounts it may charge at this site, in one call."""

    def files(self, identity: HpcIdentity) -> WorkspaceFiles:
        """Workspace file operations acting as ``identity``."""

    def check(self) -> dict[str, str]:
        """Probe connectivity; return facts for ``hpcgw sites check``."""

    def close(self) -> None:
        """Release connections."""
