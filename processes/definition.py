"""The process-definition format: what runs, described once for OGC API, WPS and Slurm.

A process is a folder ``processes/<id>/`` holding ``process.yaml`` and the
runner module it names. The YAML has two parts:

* the OGC API - Processes description (``id``, ``version``, ``title``,
  ``inputs``, ``outputs`` with JSON schemas, ...), served as is;
* ``hpc``: resources (cores, memory, walltime, partition) and the runner
  module, which the gateway turns into a batch script.

The runner contract (see :mod:`processes.runtime`): the job starts in its
workspace, reads ``inputs.json``, writes files under ``outputs/`` and a manifest
``outputs.json``, and may write ``progress.json`` at any time. User values
reach the runner only through ``inputs.json``, never through the command line.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class Resources(BaseModel):
    """What one run asks Slurm for."""

    model_config = ConfigDict(extra="forbid")

    cores: int = Field(default=1, ge=1, le=4096)
    memory_mb: int = Field(default=512, ge=16)
    walltime_minutes: int = Field(default=10, ge=1)
    partition: str | None = None


class Tiling(BaseModel):
    """A tiled process: one OGC job runs as ONE Slurm job array, a task per tile.

    The number of tasks is the process input named ``input`` when the client
    gives it (an override, bounded by ``maximum``); else, when ``size_from``
    names an image input whose header the gateway could read at submission,
    one tile per ``tile_rows`` rows of that image (:meth:`tiles_for_rows`);
    else ``default``. Each task processes its tile and the task that finishes
    last merges the tiles (see ``docs/eo-services.md``).
    """

    model_config = ConfigDict(extra="forbid")

    input: str = "tiles"
    default: int = Field(default=1, ge=1)
    maximum: int = Field(default=64, ge=1, le=1000)
    #: The image input (by reference) whose size decides the tile count.
    size_from: str | None = None
    #: Input rows per tile: the per-process tile setting (with ``size_from``).
    tile_rows: int = Field(default=1024, ge=1)

    def tiles_for_rows(self, rows: int) -> int:
        """Tiles for an image of ``rows`` rows: one per ``tile_rows``, within 1..``maximum``."""
        return max(1, min(math.ceil(rows / self.tile_rows), self.maximum))


class HpcSection(BaseModel):
    """How the process runs on the cluster."""

    model_config = ConfigDict(extra="forbid")

    resources: Resources = Field(default_factory=lambda: Resources())
    #: Python module run as ``python -m <runner>`` inside the job workspace.
    runner: str
    #: Sites where the process can run (its software is installed there); empty: every site.
    sites: list[str] = Field(default_factory=list)
    #: Set for a process that runs as a Slurm job array over tiles.
    tiling: Tiling | None = None
    #: The process runs in a container (a CWL package requiring ``DockerRequirement``):
    #: only sites declaring a ``container_runtime`` may run it.
    container: bool = False
    #: The process runs with toil (a CWL package asking for ``"runner": "toil"``):
    #: only sites declaring ``toil`` may run it.
    toil: bool = False

    @field_validator("runner")
    @classmethod
    def _module_name(cls, value: str) -> str:
        if not _MODULE_RE.match(value):
            raise ValueError(f"runner must be a dotted module name, got {value!r}")
        return value


class ProcessDefinition(BaseModel):
    """One process: its OGC description plus its HPC section."""

    model_config = ConfigDict(extra="allow")

    id: str
    version: str
    title: str
    description: str = ""
    keywords: list[str] = Field(default_factory=list)
    inputs: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    jobControlOptions: list[str] = Field(
        default_factory=lambda: ["sync-execute", "async-execute", "dismiss"]
    )
    outputTransmission: list[str] = Field(default_factory=lambda: ["value", "reference"])
    example: dict[str, Any] | None = None
    hpc: HpcSection

    @field_validator("id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        if not _ID_RE.match(value):
            raise ValueError(f"process id {value!r} must match {_ID_RE.pattern}")
        return value

    @model_validator(mode="after")
    def _tiling_names_inputs(self) -> ProcessDefinition:
        tiling = self.hpc.tiling
        if tiling is not None and tiling.size_from is not None:
            if tiling.size_from not in self.inputs:
                raise ValueError(f"hpc.tiling.size_from {tiling.size_from!r} is not an input")
        return self

    def ogc_description(self) -> dict[str, Any]:
        """The OGC process description (summary fields plus inputs/outputs), no links."""
        data = self.model_dump(exclude={"hpc", "example"}, exclude_none=True)
        return data

    def ogc_summary(self) -> dict[str, Any]:
        data = self.ogc_description()
        data.pop("inputs", None)
        data.pop("outputs", None)
        return data

    @property
    def run_version(self) -> str:
        """What a job records as the version it runs (``jobs.process_version``, <= 32 chars).

        A built-in process runs the code of the installed gateway, so its version
        is enough; a deployed package records its digest (:mod:`processes.package`).
        """
        return self.version

    def workspace_files(self) -> dict[str, bytes]:
        """Files the dispatcher writes into the job workspace before submitting (name -> bytes)."""
        return {}

    def folder_inputs(self) -> frozenset[str]:
        """Inputs whose reference is staged as a STAC catalog folder (CWL ``Directory``)."""
        return frozenset()

    def resources_for(self, inputs: dict[str, Any]) -> Resources:
        """Resources for one run. The default ignores inputs; subclasses or the
        accounting estimator may scale them with input sizes."""
        return self.hpc.resources

    def array_size_for(self, inputs: dict[str, Any]) -> int | None:
        """Tasks of the Slurm job array for one run; None for a plain (untiled) process.

        The tile count input is bounded by ``tiling.maximum`` whatever the
        description says (the inputs were validated against it already). The
        gateway fills it in from the image size at submission when the client
        did not (``gateway.staging.raster_size``), so quote and job agree."""
        tiling = self.hpc.tiling
        if tiling is None:
            return None
        value = inputs.get(tiling.input, tiling.default)
        if isinstance(value, bool) or not isinstance(value, int):
            value = tiling.default
        return max(1, min(value, tiling.maximum))


def load_definition(path: Path) -> ProcessDefinition:
    """Parse a ``process.yaml``; raises ValueError with the file name on error."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return ProcessDefinition.model_validate(data)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise ValueError(f"invalid process definition {path}: {exc}") from exc
