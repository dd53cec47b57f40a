"""Runner of every deployed CWL application package: ``python -m processes.cwl_runner``.

It runs in the job workspace, as the requesting user, inside the Slurm
allocation. The dispatcher has written there, next to ``inputs.json``:

* ``package.cwl``: the package as deployed (self-contained JSON);
* ``cwl_run.json``: ``{"entry": "#main" | "", "inputs": {name: kind},
  "outputs": {name: {"kind": kind, "type": media type}}}`` where ``kind`` is
  ``File`` or ``value`` -- derived from the CWL at deploy time, so this runner
  never interprets CWL itself.

It turns the OGC inputs into a CWL job order (a staged reference or an inline
text for a ``File`` input becomes ``{"class": "File", "path": ...}``; a
``Directory`` input is the STAC catalog folder the gateway staged), runs
``cwltool`` on it -- argv only, never a shell; ``--singularity`` for a package
requiring a container on a site declaring a runtime, else ``--no-container``
-- with its output, temporary and cache folders inside the workspace, and
turns cwltool's output object into the gateway's manifest ``outputs.json`` (a
``Directory`` output must hold a STAC catalog, ``catalog.json``, whose Items'
asset files are published as ``files``). cwltool's own messages go to the
job's stderr, so a failed run shows the CWL error in the job's status.

**Toil.** When the batch script exports ``HPCGW_CWL_RUNNER=toil`` (the package
or the site asked for it, see :meth:`processes.package.PackagedDefinition.runs_with_toil`),
the package runs with ``toil-cwl-runner --batchSystem slurm`` instead (the one
next to this Python, with the same cwltool): the runner is Toil's leader, and
every CommandLineTool step is its own Slurm job, submitted by the leader as
the same user, to the leader's cluster (``HPCGW_TOIL_SLURM_BIN`` first on the
PATH, ``HPCGW_TOIL_SLURM_CONF`` as ``SLURM_CONF``), account and partition,
named ``<leader job name>-step`` -- the tie the gateway's accounting follows to
sum the steps' core-hours under the OGC job. Toil's job store and work folder
are inside the workspace. A SIGTERM (the OGC job cancelled, or its walltime
reached) cancels the step jobs of that name before the runner exits.

Exit codes: 0 success, 2 unusable inputs or an output outside the workspace,
143 cancelled, otherwise cwltool's (toil's). Runs on the cluster: standard
library only (cwltool and toil are started as separate programs next to the
same Python).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from processes.runtime import OUTPUTS_DIR, read_inputs, report_progress, write_outputs

PACKAGE_FILE = "package.cwl"
RUN_FILE = "cwl_run.json"
JOB_ORDER_FILE = "cwl_job.json"
FILE = "File"
DIRECTORY = "Directory"
#: The STAC catalog a Directory output must hold.
CATALOG = "catalog.json"
OCTET = "application/octet-stream"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
#: Set by the batch script on a site declaring a container runtime (apptainer/singularity).
CONTAINER_RUNTIME_ENV = "HPCGW_CONTAINER_RUNTIME"
#: Set to ``toil`` by the batch script when the package runs with toil-cwl-runner.
RUNNER_ENV = "HPCGW_CWL_RUNNER"
TOIL = "toil"
#: The site's Slurm commands folder and configuration, for toil's step jobs.
TOIL_SLURM_BIN_ENV = "HPCGW_TOIL_SLURM_BIN"
TOIL_SLURM_CONF_ENV = "HPCGW_TOIL_SLURM_CONF"
#: Step jobs are named after the leader's Slurm job plus this (the accounting tie).
STEP_SUFFIX = "-step"
TOIL_FOLDER = "toil"
CANCELLED = 128 + signal.SIGTERM


class RunnerError(Exception):
    """Inputs or outputs this runner cannot use (exit code 2)."""


def _unwrap(value: Any) -> Any:
    """A qualified value ``{"value": v, "mediaType": ...}`` -> ``v``."""
    if isinstance(value, dict) and "value" in value and "href" not in value:
        return value["value"]
    return value


def _file(name: str, value: Any, workspace: Path, index: int, kind: str = FILE) -> dict[str, str]:
    """A CWL File (or Directory) for one OGC value: a staged reference (a Directory: the
    STAC catalog folder the gateway staged), or inline text written to a file."""
    if isinstance(value, dict) and "path" in value:
        path = (workspace / str(value["path"])).resolve()
        if not path.is_relative_to(workspace / "inputs"):
            raise RunnerError(f"input {name}: staged path {value['path']!r} is outside inputs/")
        return {"class": kind, "path": str(path)}
    if kind == DIRECTORY:
        raise RunnerError(f"input {name}: a Directory is given as a STAC Item or Catalog href")
    value = _unwrap(value)
    if not isinstance(value, str):
        raise RunnerError(f"input {name}: a File is given by reference (href) or as text")
    path = workspace / "inputs" / f"{name}-{index}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value, encoding="utf-8")
    return {"class": FILE, "path": str(path)}


def job_order(inputs: dict[str, Any], kinds: dict[str, str], workspace: Path) -> dict[str, Any]:
    """The CWL job order for ``inputs`` (names the package does not declare are dropped)."""
    order: dict[str, Any] = {}
    for name, raw in inputs.items():
        kind = kinds.get(name)
        if kind is None:
            continue
        values = raw if isinstance(raw, list) else None
        if kind in (FILE, DIRECTORY):
            if values is not None:
                order[name] = [_file(name, v, workspace, i, kind) for i, v in enumerate(values)]
            else:
                order[name] = _file(name, raw, workspace, 0, kind)
        else:
            order[name] = _unwrap(raw)
    return order


def _inside(base: Path, href: Any, folder: Path, what: str) -> Path:
    """A relative href of the output catalog, resolved; RunnerError unless inside ``folder``."""
    if not isinstance(href, str) or "://" in href or href.startswith("/"):
        raise RunnerError(f"{what}: href {href!r} is not a relative path inside the catalog")
    path = (base / href).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        raise RunnerError(f"{what}: {href!r} is not a file inside the catalog folder")
    return path


def _json_file(path: Path, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunnerError(f"{what}: {exc}") from None
    if not isinstance(doc, dict):
        raise RunnerError(f"{what}: not a JSON object")
    return doc


def catalog_files(name: str, value: Any, root: Path) -> list[dict[str, str]]:
    """A ``Directory`` output holding a STAC catalog -> its Items' asset files, moved to
    ``outputs/<output>-<item>-<asset><ext>`` (published as assets of the job's STAC Item)."""
    folder = Path(str(value.get("path", "") if isinstance(value, dict) else "")).resolve()
    if not folder.is_relative_to(root) or not folder.is_dir():
        raise RunnerError(f"output {name}: {folder} is not a folder under {OUTPUTS_DIR}/")
    catalog = _inside(folder, CATALOG, folder, f"output {name}")
    files: list[dict[str, str]] = []
    for link in _json_file(catalog, f"output {name}").get("links", []):
        if not isinstance(link, dict) or link.get("rel") != "item":
            continue
        item_path = _inside(catalog.parent, link.get("href"), folder, f"output {name}")
        item = _json_file(item_path, f"output {name}")
        assets = item.get("assets")
        for key, asset in (assets if isinstance(assets, dict) else {}).items():
            what = f"output {name}, asset {key}"
            source = _inside(item_path.parent, asset.get("href"), folder, what)
            stem = _UNSAFE.sub("_", f"{name}-{item.get('id', 'item')}-{key}")[:100]
            target = root / f"{stem}{source.suffix.lower()[:9]}"
            while target.exists():  # two keys alike once made safe: keep both
                target = target.with_stem(f"{target.stem}_")
            source.rename(target)
            files.append(
                {"path": f"{OUTPUTS_DIR}/{target.name}", "type": asset.get("type") or OCTET}
            )
    if not files:
        raise RunnerError(f"output {name}: the STAC catalog has no Item with assets")
    return files


def manifest(
    result: dict[str, Any], outputs: dict[str, dict[str, str]], workspace: Path
) -> dict[str, dict[str, Any]]:
    """cwltool's output object -> the gateway's ``outputs.json`` entries."""
    root = (workspace / OUTPUTS_DIR).resolve()
    found: dict[str, dict[str, Any]] = {}
    for name, spec in outputs.items():
        value = result.get(name)
        if value is None:
            continue
        if spec.get("kind") == DIRECTORY:
            found[name] = {"files": catalog_files(name, value, root)}
        elif spec.get("kind") == FILE:
            if isinstance(value, list):
                raise RunnerError(f"output {name}: arrays of files are not published yet")
            path = Path(str(value.get("path", ""))).resolve()
            if not path.is_relative_to(root) or not path.is_file():
                raise RunnerError(f"output {name}: {path} is not a file under {OUTPUTS_DIR}/")
            entry = {"path": str(path.relative_to(workspace.resolve()))}
            if spec.get("type"):
                entry["type"] = spec["type"]
            found[name] = entry
        else:
            found[name] = {"value": value}
    return found


def container_flag(container: bool, runtime: str) -> str:
    """``--singularity`` for a package requiring a container on a site declaring a
    runtime (cwltool drives apptainer through its ``singularity`` command), else
    ``--no-container`` (a ``DockerRequirement`` hint runs from the site's software)."""
    if container and not runtime:
        raise RunnerError("the package requires a container and this site declares no runtime")
    return "--singularity" if container else "--no-container"


def run_arguments(workspace: Path, entry: str, container: str) -> list[str]:
    """The argv tail cwltool and toil-cwl-runner share: container flag, outputs and
    temporary files inside the workspace, the package and its job order."""
    tmp = workspace / "cwltmp"
    tmp.mkdir(exist_ok=True)
    return [
        container,
        "--outdir",
        str(workspace / OUTPUTS_DIR),
        "--tmpdir-prefix",
        f"{tmp}/",
        "--tmp-outdir-prefix",
        f"{tmp}/",
        f"{workspace / PACKAGE_FILE}{entry}",
        str(workspace / JOB_ORDER_FILE),
    ]


def cwltool_command(workspace: Path, entry: str, container: str = "--no-container") -> list[str]:
    """cwltool's argv (no shell): outputs, temporary files and cache inside the workspace."""
    return [
        sys.executable,
        "-m",
        "cwltool",
        "--skip-schemas",
        "--disable-color",
        *run_arguments(workspace, entry, container),
    ]


def step_job_name(leader_name: str) -> str:
    """The Slurm job name of every step of the leader job named ``leader_name``."""
    return f"{leader_name}{STEP_SUFFIX}"


def toil_command(workspace: Path, entry: str, container: str = "--no-container") -> list[str]:
    """toil-cwl-runner's argv (no shell): job store, work folder, outputs and temporary
    files inside the workspace; a failed step is not retried (one Slurm job per step)."""
    folder = workspace / TOIL_FOLDER
    folder.mkdir(exist_ok=True)
    return [
        str(Path(sys.executable).parent / "toil-cwl-runner"),
        "--batchSystem",
        "slurm",
        "--jobStore",
        f"file:{folder / 'jobstore'}",
        "--workDir",
        str(folder),
        "--batchLogsDir",
        str(folder),
        "--retryCount",
        "0",
        "--logLevel",
        "WARNING",
        "--disableProgress",
        *run_arguments(workspace, entry, container),
    ]


def toil_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The leader's environment for toil: its workers (``_toil_worker``, next to this
    Python) and the site's Slurm commands on the PATH, the site's ``SLURM_CONF``, and
    ``TOIL_SLURM_ARGS`` sending every step to the leader's account and partition under
    the step name (values quoted: toil splits them with shlex)."""
    result = dict(env)
    path = [str(Path(sys.executable).parent)]
    if env.get(TOIL_SLURM_BIN_ENV):
        path.append(env[TOIL_SLURM_BIN_ENV])
    result["PATH"] = os.pathsep.join([*path, env.get("PATH", "/usr/bin:/bin")])
    if env.get(TOIL_SLURM_CONF_ENV):
        result["SLURM_CONF"] = env[TOIL_SLURM_CONF_ENV]
    args = [f"--job-name={step_job_name(env.get('SLURM_JOB_NAME', 'hpcgw'))}"]
    for option, variable in (
        ("account", "SLURM_JOB_ACCOUNT"),
        ("partition", "SLURM_JOB_PARTITION"),
    ):
        if env.get(variable):
            args.append(f"--{option}={env[variable]}")
    result["TOIL_SLURM_ARGS"] = " ".join(shlex.quote(a) for a in args)
    return result


class Terminated(Exception):
    """SIGTERM reached the runner (the job was cancelled or hit its walltime)."""


def _terminated(signum: int, _frame: object) -> None:
    raise Terminated(signum)


def cancel_steps(env: Mapping[str, str]) -> None:
    """``scancel`` every step job of this leader (by name, this user's only)."""
    name = step_job_name(env.get("SLURM_JOB_NAME", "hpcgw"))
    user = pwd.getpwuid(os.getuid()).pw_name
    subprocess.run(
        ["scancel", f"--name={name}", f"--user={user}"], env=dict(env), check=False, timeout=20
    )


def run_package(
    command: list[str], workspace: Path, env: dict[str, str] | None
) -> tuple[int, bytes]:
    """Run cwltool (``env`` None) or toil's leader; on SIGTERM cancel toil's step jobs
    (before and after the leader stops, so a step submitted meanwhile goes too)."""
    if env is None:
        done = subprocess.run(command, stdout=subprocess.PIPE, check=False, cwd=workspace)
        return done.returncode, done.stdout
    previous = signal.signal(signal.SIGTERM, _terminated)
    leader = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=workspace, env=env)
    try:
        out, _ = leader.communicate()
        return leader.returncode, out
    except Terminated:
        print("cancelled: cancelling the workflow's step jobs", file=sys.stderr)
        cancel_steps(env)
        leader.terminate()
        try:
            leader.wait(timeout=3)
        except subprocess.TimeoutExpired:
            leader.kill()
        cancel_steps(env)
        return CANCELLED, b""
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> int:
    workspace = Path.cwd().resolve()
    run = json.loads((workspace / RUN_FILE).read_text(encoding="utf-8"))
    try:
        order = job_order(read_inputs(workspace), run["inputs"], workspace)
        container = container_flag(
            bool(run.get("container")), os.environ.get(CONTAINER_RUNTIME_ENV, "")
        )
    except RunnerError as exc:
        print(f"invalid inputs: {exc}", file=sys.stderr)
        return 2
    (workspace / JOB_ORDER_FILE).write_text(json.dumps(order), encoding="utf-8")
    toil = os.environ.get(RUNNER_ENV) == TOIL
    program = "toil-cwl-runner" if toil else "cwltool"
    command = (toil_command if toil else cwltool_command)(
        workspace, run.get("entry", ""), container
    )
    report_progress(10, f"{program} is running the application package", workspace)
    code, stdout = run_package(command, workspace, toil_environment(os.environ) if toil else None)
    if code != 0:
        print(f"{program} failed with exit code {code}", file=sys.stderr)
        return code
    try:
        outputs = manifest(json.loads(stdout), run["outputs"], workspace)
    except (RunnerError, ValueError) as exc:
        print(f"unusable {program} output: {exc}", file=sys.stderr)
        return 2
    write_outputs(outputs, workspace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
