"""Settings of deployed application packages (OGC API - Processes Part 2): ``apppkg:``."""

from __future__ import annotations

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
