"""Runner of every deployed CWL application package: ``python -m processes.cwl_runner``.

It runs in the job workspace, as the requesting user, inside the Slurm
allocation. The dispatcher has written there, next to ``inputs.json``:

* ``package.cwl``: the package as deployed (self-contained JSON);
* ``cwl_run.json``: ``{"entry": "#main" | "", "inputs": {name: kind},
  "outputs": {name: {"kind": kind, "type": media type}}}`` where ``kind`` is
  ``File`` or ``value`` -- derived from the CWL at deploy time, so this runner
  never interprets CWL itself.

It turns the OGC inputs into a CWL job order (a staged reference or an inline
text for a ``File`` input becomes ``{"class": "File", "path": ...}``), runs
``cwltool`` on it -- argv only, never a shell; ``--no-container`` (a site with
a container runtime is future work) -- with its output, temporary and cache
folders inside the workspace, and turns cwltool's output object into the
gateway's manifest ``outputs.json``. cwltool's own messages go to the job's
stderr, so a failed run shows the CWL error in the job's status.

Exit codes: 0 success, 2 unusable inputs or an output outside the workspace,
otherwise cwltool's. Runs on the cluster: standard library only (cwltool is
started as a separate program from the same Python).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from processes.runtime import OUTPUTS_DIR, read_inputs, report_progress, write_outputs

PACKAGE_FILE = "package.cwl"
RUN_FILE = "cwl_run.json"
JOB_ORDER_FILE = "cwl_job.json"
FILE = "File"


class RunnerError(Exception):
    """Inputs or outputs this runner cannot use (exit code 2)."""


def _unwrap(value: Any) -> Any:
    """A qualified value ``{"value": v, "mediaType": ...}`` -> ``v``."""
    if isinstance(value, dict) and "value" in value and "href" not in value:
        return value["value"]
    return value


def _file(name: str, value: Any, workspace: Path, index: int) -> dict[str, str]:
    """A CWL File for one OGC value: a staged reference, or inline text written to a file."""
    if isinstance(value, dict) and "path" in value:
        path = (workspace / str(value["path"])).resolve()
        if not path.is_relative_to(workspace / "inputs"):
            raise RunnerError(f"input {name}: staged path {value['path']!r} is outside inputs/")
        return {"class": FILE, "path": str(path)}
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
        if kind == FILE:
            if values is not None:
                order[name] = [_file(name, v, workspace, i) for i, v in enumerate(values)]
            else:
                order[name] = _file(name, raw, workspace, 0)
        else:
            order[name] = _unwrap(raw)
    return order


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
        if spec.get("kind") == FILE:
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


def cwltool_command(workspace: Path, entry: str) -> list[str]:
    """cwltool's argv (no shell): outputs, temporary files and cache inside the workspace."""
    tmp = workspace / "cwltmp"
    tmp.mkdir(exist_ok=True)
    return [
        sys.executable,
        "-m",
        "cwltool",
        "--no-container",
        "--skip-schemas",
        "--disable-color",
        "--outdir",
        str(workspace / OUTPUTS_DIR),
        "--tmpdir-prefix",
        f"{tmp}/",
        "--tmp-outdir-prefix",
        f"{tmp}/",
        f"{workspace / PACKAGE_FILE}{entry}",
        str(workspace / JOB_ORDER_FILE),
    ]


def main() -> int:
    workspace = Path.cwd().resolve()
    run = json.loads((workspace / RUN_FILE).read_text(encoding="utf-8"))
    try:
        order = job_order(read_inputs(workspace), run["inputs"], workspace)
    except RunnerError as exc:
        print(f"invalid inputs: {exc}", file=sys.stderr)
        return 2
    (workspace / JOB_ORDER_FILE).write_text(json.dumps(order), encoding="utf-8")
    report_progress(10, "cwltool is running the application package", workspace)
    done = subprocess.run(
        cwltool_command(workspace, run.get("entry", "")),
        stdout=subprocess.PIPE,
        check=False,
        cwd=workspace,
    )
    if done.returncode != 0:
        print(f"cwltool failed with exit code {done.returncode}", file=sys.stderr)
        return done.returncode
    try:
        outputs = manifest(json.loads(done.stdout), run["outputs"], workspace)
    except (RunnerError, ValueError) as exc:
        print(f"unusable cwltool output: {exc}", file=sys.stderr)
        return 2
    write_outputs(outputs, workspace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
