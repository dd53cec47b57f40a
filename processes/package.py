"""A process deployed as a CWL application package (OGC API - Processes Part 2).

:class:`PackagedDefinition` is a :class:`~processes.definition.ProcessDefinition`
whose runner is :mod:`processes.cwl_runner` and which carries the CWL document
it was derived from (:meth:`runs_with_toil`: whether its steps run as Slurm
jobs of their own). The dispatcher writes that document into the job workspace
as ``package.cwl`` (:meth:`workspace_files`), where the runner hands it to
``cwltool``. A job records the package's digest (:attr:`run_version`), so a job
accepted before a replace runs the package it was accepted with.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from processes.cwl_runner import PACKAGE_FILE, RUN_FILE
from processes.definition import ProcessDefinition

#: The runner of every deployed package.
CWL_RUNNER = "processes.cwl_runner"
__all__ = ["CWL_RUNNER", "PACKAGE_FILE", "RUN_FILE", "CwlOutput", "CwlRun", "PackagedDefinition"]

#: ``Directory``: a STAC catalog folder (staged from a STAC Item/Catalog href; as an
#: output, published as the job's results).
Kind = Literal["File", "Directory", "value"]


class CwlOutput(BaseModel):
    """How one CWL output becomes a gateway output."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    #: Media type of a published file (from the CWL ``format``, else none).
    type: str | None = None


class CwlRun(BaseModel):
    """What :mod:`processes.cwl_runner` needs to know, derived from the CWL at deploy time."""

    model_config = ConfigDict(extra="forbid")

    #: ``#id`` of the process to run in a ``$graph`` document, else empty.
    entry: str = ""
    inputs: dict[str, Kind]
    outputs: dict[str, CwlOutput]
    #: The package requires a container: run with the site's runtime (``--singularity``).
    container: bool = False
    #: The runner the package asks for (its execution unit's ``config.runner``);
    #: None: the site's ``cwl_runner`` for a Workflow, cwltool for anything else.
    runner: Literal["cwltool", "toil"] | None = None
    #: The process that runs is a ``Workflow`` (steps a site may run with toil).
    workflow: bool = False


#: How many hex digits of the sha256 digest a job records (its ``process_version``).
RUN_VERSION_DIGITS = 32


class PackagedDefinition(ProcessDefinition):
    """A deployed process: its OGC description, ``hpc`` section and CWL package."""

    #: The CWL document (JSON text, self-contained: no external references).
    package: str = Field(repr=False)
    #: sha256 (hex) of :attr:`package`.
    digest: str
    cwl_run: CwlRun

    @property
    def run_version(self) -> str:
        return self.digest[:RUN_VERSION_DIGITS]

    def runs_with_toil(self, site_runner: str) -> bool:
        """Whether a run on a site whose ``cwl_runner`` is ``site_runner`` uses
        ``toil-cwl-runner --batchSystem slurm``: the package's own ask wins, else a
        Workflow follows the site (a single tool always runs in the allocation)."""
        if self.cwl_run.runner is not None:
            return self.cwl_run.runner == "toil"
        return self.cwl_run.workflow and site_runner == "toil"

    def workspace_files(self) -> dict[str, bytes]:
        plan = json.dumps(self.cwl_run.model_dump(mode="json")).encode("utf-8")
        return {PACKAGE_FILE: self.package.encode("utf-8"), RUN_FILE: plan}

    def folder_inputs(self) -> frozenset[str]:
        return frozenset(n for n, kind in self.cwl_run.inputs.items() if kind == "Directory")

    def ogc_description(self) -> dict[str, Any]:
        data = super().ogc_description()
        data.pop("package", None)
        data.pop("digest", None)
        data.pop("cwl_run", None)
        return data
