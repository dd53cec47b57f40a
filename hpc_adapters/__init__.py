"""Talking to a batch scheduler (Slurm) over a transport (slurmrestd, SSH, pyslurm).

This package knows Slurm and transports only: nothing about HTTP, OGC or the
gateway's database. The contract every adapter honours is in
:mod:`hpc_adapters.base`; errors are in :mod:`hpc_adapters.errors`.
"""

from hpc_adapters.base import (
    HpcIdentity,
    JobSpec,
    JobStatus,
    SchedulerAdapter,
    SchedulerState,
    Usage,
    WorkspaceFiles,
)
from hpc_adapters.errors import (
    AuthenticationError,
    HpcError,
    InvalidJobError,
    JobRejectedError,
    PermanentHpcError,
    TransientHpcError,
    TransportError,
    WorkspaceError,
)

__all__ = [
    "AuthenticationError",
    "HpcError",
    "HpcIdentity",
    "InvalidJobError",
    "JobRejectedError",
    "JobSpec",
    "JobStatus",
    "PermanentHpcError",
    "SchedulerAdapter",
    "SchedulerState",
    "TransientHpcError",
    "TransportError",
    "Usage",
    "WorkspaceError",
    "WorkspaceFiles",
]
