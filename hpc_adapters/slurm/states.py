"""Slurm job-state names -> :class:`~hpc_adapters.base.SchedulerState`.

One table for every spelling Slurm uses: the long names of ``squeue -o %T``,
``sacct -o State`` and slurmrestd (``COMPLETED``), the compact codes of
``squeue -o %t`` (``CD``), sacct's decorations (``CANCELLED by 1001``,
``CANCELLED+``) and flag lists (``["RUNNING", "COMPLETING"]`` in OpenAPI
v0.0.40+, ``COMPLETED,COMPLETING`` in some CLI output).

An unknown name is logged and mapped to :attr:`SchedulerState.UNKNOWN`, which
counts as *active*: a state we do not understand is never taken for success
(Parsl does the same).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from hpc_adapters.base import SchedulerState

log = logging.getLogger(__name__)

_S = SchedulerState

#: Slurm base states and the flags that override them, long names and codes.
SLURM_STATES: dict[str, SchedulerState] = {
    # waiting
    "PENDING": _S.PENDING,
    "PD": _S.PENDING,
    "REQUEUED": _S.PENDING,
    "RQ": _S.PENDING,
    "REQUEUE_FED": _S.PENDING,
    "RF": _S.PENDING,
    "REQUEUE_HOLD": _S.PENDING,
    "RH": _S.PENDING,
    "RESV_DEL_HOLD": _S.PENDING,
    "RD": _S.PENDING,
    "CONFIGURING": _S.PENDING,  # nodes allocated but still booting
    "CF": _S.PENDING,
    # running
    "RUNNING": _S.RUNNING,
    "R": _S.RUNNING,
    "RESIZING": _S.RUNNING,
    "RS": _S.RUNNING,
    "SIGNALING": _S.RUNNING,
    "SI": _S.RUNNING,
    "STAGE_OUT": _S.RUNNING,
    "SO": _S.RUNNING,
    "SUSPENDED": _S.SUSPENDED,
    "S": _S.SUSPENDED,
    "STOPPED": _S.SUSPENDED,
    "ST": _S.SUSPENDED,
    "COMPLETING": _S.COMPLETING,
    "CG": _S.COMPLETING,
    # final
    "COMPLETED": _S.COMPLETED,
    "CD": _S.COMPLETED,
    "FAILED": _S.FAILED,
    "F": _S.FAILED,
    "SPECIAL_EXIT": _S.FAILED,
    "SE": _S.FAILED,
    "CANCELLED": _S.CANCELLED,
    "CA": _S.CANCELLED,
    "REVOKED": _S.CANCELLED,  # federation: a sibling ran the job instead
    "RV": _S.CANCELLED,
    "TIMEOUT": _S.TIMEOUT,
    "TO": _S.TIMEOUT,
    "OUT_OF_MEMORY": _S.OUT_OF_MEMORY,
    "OOM": _S.OUT_OF_MEMORY,
    "NODE_FAIL": _S.NODE_FAIL,
    "NF": _S.NODE_FAIL,
    "PREEMPTED": _S.PREEMPTED,
    "PR": _S.PREEMPTED,
    "BOOT_FAIL": _S.BOOT_FAIL,
    "BF": _S.BOOT_FAIL,
    "DEADLINE": _S.DEADLINE,
    "DL": _S.DEADLINE,
}

#: Flags that say more than the base state while they are set (a COMPLETED
#: base state with the COMPLETING flag is still completing).
_OVERRIDING_FLAGS = ("COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING", "RESIZING")


def _normalise(name: str) -> str:
    """``"cancelled by 1001"`` -> ``"CANCELLED"``; ``"CANCELLED+"`` -> ``"CANCELLED"``."""
    word = name.strip().split(" ", 1)[0] if name.strip() else ""
    return word.rstrip("+").upper()


def parse_state(raw: str | Iterable[str] | None) -> SchedulerState:
    """Map a Slurm state (a name, a comma list or a list of flags) to a SchedulerState.

    Unknown or empty names give :attr:`SchedulerState.UNKNOWN` with a warning.
    """
    if raw is None:
        log.warning("Slurm job without a state; treating it as UNKNOWN (still active)")
        return _S.UNKNOWN
    names = raw.split(",") if isinstance(raw, str) else list(raw)
    words = [_normalise(n) for n in names if n and n.strip()]
    for flag in _OVERRIDING_FLAGS:
        if flag in words and len(words) > 1:
            return SLURM_STATES[flag]
    for word in words:
        state = SLURM_STATES.get(word)
        if state is not None:
            return state
    log.warning("unknown Slurm job state %r; treating it as UNKNOWN (still active)", raw)
    return _S.UNKNOWN


def state_name(raw: str | Iterable[str] | None) -> str:
    """The raw state as one display string (``"RUNNING,COMPLETING"`` for flag lists)."""
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    return ",".join(raw)
