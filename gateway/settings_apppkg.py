"""Settings of deployed application packages (OGC API - Processes Part 2): ``apppkg:``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class AppPkgSettings(BaseModel):
    """Who may deploy, how large a package may be, and what one run may ask for."""

    model_config = ConfigDict(extra="forbid")

    #: Accept Part 2 deploy/replace/undeploy at all.
    enabled: bool = True
    #: Largest package (request body) accepted, in bytes.
    max_package_bytes: int = Field(default=256 * 1024, ge=1024)
    #: Caps on what a package's ResourceRequirement / config may ask for one run.
    max_cores: int = Field(default=16, ge=1)
    max_memory_mb: int = Field(default=64 * 1024, ge=16)
    max_walltime_minutes: int = Field(default=24 * 60, ge=1)
    #: What a run gets when the package says nothing.
    default_memory_mb: int = Field(default=1024, ge=16)
    default_walltime_minutes: int = Field(default=60, ge=1)


#: How a site runs deployed CWL packages: ``cwltool`` inside the job's one allocation,
#: or ``toil``: ``toil-cwl-runner --batchSystem slurm``, each step its own Slurm job.
CwlRunner = Literal["cwltool", "toil"]


class ToilSettings(BaseModel):
    """A site that has Toil (``sites.<name>.toil``): how its step jobs reach *its* Slurm.

    The leader (the OGC job's own Slurm job) submits the steps with ``sbatch``
    and follows them with ``squeue``/``sacct``; on a machine or login node with
    several Slurm installations those must be this cluster's commands and
    configuration, never another's.
    """

    model_config = ConfigDict(extra="forbid")

    #: Folder of this cluster's Slurm commands (put first on toil's PATH); None: the PATH's.
    slurm_bin: str | None = None
    #: ``SLURM_CONF`` of this cluster for toil's Slurm commands; None: the job's own.
    slurm_conf: str | None = None
