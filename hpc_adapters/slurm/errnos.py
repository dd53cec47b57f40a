"""Slurm error numbers (``slurm/slurm_errno.h``) as the branches of the adapter error tree.

slurmrestd reports failures as ``errors[].error_number`` (and, for v0.0.42
cancels, ``status[].error.code``); these sets say what each number means for
the caller: the credentials were refused, try again later, or the job id is
unknown. Shared by every slurmrestd dialect.
"""

from __future__ import annotations

from collections.abc import Sequence

from hpc_adapters.errors import (
    AuthenticationError,
    HpcError,
    InvalidJobError,
    SchedulerBusyError,
)
from hpc_adapters.slurm.dialect_base import SlurmApiError

# Slurm error numbers (slurm/slurm_errno.h) grouped by what the caller should do.
AUTH = {1007, 2002, *range(6000, 6100)}
BUSY = {
    -1, 4, 11,  # unspecified, EINTR, EAGAIN
    *range(1000, 1007), *range(1800, 1900),  # slurmctld communication
    2008, 2016, 2020, 2026, 2105, 2125, 2131,  # try again / standby / disabled
    *range(5000, 5100),  # socket errors (5005 is also how a refused token looks)
    7000, 7008,  # slurmdbd connection
}  # fmt: skip
INVALID_JOB = 2017
ALREADY_DONE = 2021
NOTHING_FOUND = 9003


def classify(errors: Sequence[SlurmApiError]) -> type[HpcError] | None:
    """The error class the first classifiable Slurm error calls for, if any."""
    for err in errors:
        if err.code in AUTH:
            return AuthenticationError
        if err.code in BUSY:
            return SchedulerBusyError
        if err.code == INVALID_JOB:
            return InvalidJobError
    return None


def describe(errors: Sequence[SlurmApiError]) -> str:
    return "; ".join(f"{e.message} (slurm error {e.code})" for e in errors) or "no detail"
