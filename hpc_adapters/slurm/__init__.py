"""Slurm *dialect*: what is Slurm-specific but transport-neutral.

State names (:mod:`.states`), batch-script rendering (:mod:`.script`) and the
slurmrestd OpenAPI versions (:mod:`.dialects`). Transports live one level up
(:mod:`hpc_adapters.slurmrest`).
"""

from hpc_adapters.slurm.dialects import (
    AccountingRecord,
    Dialect,
    SlurmApiError,
    SubmitResult,
    V0038Dialect,
    V0040Dialect,
    V0041Dialect,
    V0042Dialect,
    dialect_for,
    supported_versions,
)
from hpc_adapters.slurm.script import output_paths, render_batch_script, sbatch_options
from hpc_adapters.slurm.states import SLURM_STATES, parse_state

__all__ = [
    "SLURM_STATES",
    "AccountingRecord",
    "Dialect",
    "SlurmApiError",
    "SubmitResult",
    "V0038Dialect",
    "V0040Dialect",
    "V0041Dialect",
    "V0042Dialect",
    "dialect_for",
    "output_paths",
    "parse_state",
    "render_batch_script",
    "sbatch_options",
    "supported_versions",
]
