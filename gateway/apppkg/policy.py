"""What a deployed package may ask for: requirements refused, resources capped.

Refused, with the reason, before anything is stored:

* ``ShellCommandRequirement``: CWL runs a tool's argv without a shell; a
  package may not turn that off (shell metacharacters in arguments stay
  plain characters);
* ``InitialWorkDirRequirement``: it writes arbitrary files (by any name) into
  the run's working folder before the tool starts; refused rather than confined;
* ``DockerRequirement`` as a *requirement* when no site of this gateway declares a
  container runtime (``sites.<name>.container_runtime``: apptainer/singularity), so
  no site could run it; with one, the package is marked as needing a container and
  routing sends it only to those sites (as a *hint* it is ignored and the tool runs
  from the site's software);
* ``"runner": "toil"`` in the execution unit's ``config`` when no site declares
  toil (``sites.<name>.toil``); with one, routing sends the package only to those
  sites, where its steps run as Slurm jobs of their own
  (``toil-cwl-runner --batchSystem slurm``); ``"runner": "cwltool"`` keeps a
  Workflow in its one allocation even on a site whose ``cwl_runner`` is toil;
* resources beyond the gateway's caps (``ResourceRequirement`` coresMin,
  ramMin; ``ToolTimeLimit``; the execution unit's ``config``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from gateway.errors import BadRequest
from gateway.settings import SiteSettings
from gateway.settings_apppkg import AppPkgSettings, CwlRunner
from processes.definition import Resources

REFUSED = {
    "ShellCommandRequirement": (
        "ShellCommandRequirement is refused: deployed tools run their argv without a shell"
    ),
    "InitialWorkDirRequirement": (
        "InitialWorkDirRequirement is refused: a deployed package may not stage "
        "files of its own choosing into the working folder"
    ),
}
CONTAINER = "DockerRequirement"
RUNNERS = ("cwltool", "toil")


@dataclass(frozen=True)
class SiteAbilities:
    """Which sites can run what a package may require (deploy refuses what none can)."""

    #: Sites declaring a container runtime.
    container: tuple[str, ...] = ()
    #: Sites declaring toil.
    toil: tuple[str, ...] = ()

    @classmethod
    def of(cls, sites: Mapping[str, SiteSettings]) -> SiteAbilities:
        return cls(
            container=tuple(n for n, s in sites.items() if s.container_runtime),
            toil=tuple(n for n, s in sites.items() if s.toil is not None),
        )


def requested_runner(config: dict[str, Any], toil_sites: Sequence[str]) -> CwlRunner | None:
    """The runner the execution unit's ``config.runner`` asks for (None: not said);
    BadRequest for an unknown one, or toil when no site (``toil_sites``) has it."""
    runner = config.get("runner")
    if runner is None:
        return None
    if runner not in RUNNERS:
        raise BadRequest(f"config.runner must be one of {', '.join(RUNNERS)}, got {runner!r}")
    if runner == "toil" and not toil_sites:
        raise BadRequest(
            "the package asks for the toil runner (config.runner) and no site of this "
            "gateway declares toil; leave it out to run the workflow inside one Slurm job"
        )
    return cast(CwlRunner, runner)


def requirement_classes(cwl: Any, section: str) -> Iterator[str]:
    """Class names of every ``section`` (requirements/hints) entry anywhere in ``cwl``."""
    if isinstance(cwl, dict):
        for key, value in cwl.items():
            if key == section:
                if isinstance(value, list):
                    yield from (str(v.get("class")) for v in value if isinstance(v, dict))
                elif isinstance(value, dict):
                    yield from (str(k) for k in value)
            yield from requirement_classes(value, section)
    elif isinstance(cwl, list):
        for value in cwl:
            yield from requirement_classes(value, section)


def check_requirements(cwl: dict[str, Any], container_sites: Sequence[str]) -> bool:
    """Whether the package needs a container; BadRequest naming the first requirement
    (or hint) this gateway will not run, or a container no site (``container_sites``:
    those declaring a runtime) can run."""
    required = set(requirement_classes(cwl, "requirements"))
    hinted = set(requirement_classes(cwl, "hints"))
    for name, reason in REFUSED.items():
        if name in required or name in hinted:
            raise BadRequest(reason)
    if CONTAINER in required and not container_sites:
        raise BadRequest(
            "the package requires a container (DockerRequirement) and no site of this "
            "gateway declares a container runtime (apptainer/singularity); give it as a "
            "hint to run the tool from the site's installed software"
        )
    return CONTAINER in required


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{what} must be a number (expressions are not accepted), got {value!r}")
    if value <= 0:
        raise BadRequest(f"{what} must be positive, got {value!r}")
    return float(value)


def _entries(cwl: dict[str, Any], name: str) -> dict[str, Any]:
    """The top-level requirement or hint ``name`` (requirements win), as a mapping."""
    for section in ("requirements", "hints"):
        value = cwl.get(section)
        if isinstance(value, dict) and isinstance(value.get(name), dict):
            return dict(value[name])
        if isinstance(value, list):
            for entry in value:
                if isinstance(entry, dict) and entry.get("class") == name:
                    return entry
    return {}


def resources(cwl: dict[str, Any], config: dict[str, Any], caps: AppPkgSettings) -> Resources:
    """Cores, memory and walltime of one run, within the gateway's caps (else BadRequest)."""
    req = _entries(cwl, "ResourceRequirement")
    cores = _number(config.get("cpuMin"), "config.cpuMin") or _number(
        req.get("coresMin"), "ResourceRequirement.coresMin"
    )
    memory = _number(config.get("memoryMin"), "config.memoryMin") or _number(
        req.get("ramMin"), "ResourceRequirement.ramMin"
    )
    limit = _entries(cwl, "ToolTimeLimit").get("timelimit")
    seconds = _number(config.get("jobTimeout"), "config.jobTimeout") or _number(
        limit, "ToolTimeLimit.timelimit"
    )
    result = Resources(
        cores=int(cores or 1),
        memory_mb=max(16, int(memory or caps.default_memory_mb)),
        walltime_minutes=max(1, -(-int(seconds) // 60))
        if seconds
        else caps.default_walltime_minutes,
    )
    for asked, cap, what in (
        (result.cores, caps.max_cores, "cores"),
        (result.memory_mb, caps.max_memory_mb, "MiB of memory"),
        (result.walltime_minutes, caps.max_walltime_minutes, "minutes of walltime"),
    ):
        if asked > cap:
            raise BadRequest(f"the package asks for {asked} {what}; this gateway allows {cap}")
    return result
