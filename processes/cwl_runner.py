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

Exit codes: 0 success, 2 unusable inputs or an output outside the workspace,
otherwise cwltool's. Runs on the cluster: standard library only (cwltool is
started as a separate program from the same Python).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
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


def cwltool_command(workspace: Path, entry: str, container: str = "--no-container") -> list[str]:
    """cwltool's argv (no shell): outputs, temporary files and cache inside the workspace."""
    tmp = workspace / "cwltmp"
    tmp.mkdir(exist_ok=True)
    return [
        sys.executable,
        "-m",
        "cwltool",
        container,
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
        container = container_flag(
            bool(run.get("container")), os.environ.get(CONTAINER_RUNTIME_ENV, "")
        )
    except RunnerError as exc:
        print(f"invalid inputs: {exc}", file=sys.stderr)
        return 2
    (workspace / JOB_ORDER_FILE).write_text(json.dumps(order), encoding="utf-8")
    report_progress(10, "cwltool is running the application package", workspace)
    done = subprocess.run(
        cwltool_command(workspace, run.get("entry", ""), container),
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
