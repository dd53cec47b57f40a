"""Helpers for process runners executing inside a Slurm job.

A runner is started with its workspace as working directory. It reads
``inputs.json`` (``{"inputs": {...}}``; inputs given by reference have been
staged and appear as ``{"href": ..., "path": "inputs/<file>"}``), writes files
under ``outputs/`` and finally the manifest ``outputs.json``::

    {"outputs": {"name": {"value": <json>}                      # by value
                 "other": {"path": "outputs/x.tif", "type": "image/tiff"}}}

It may write ``progress.json`` (``{"percent": 0-100, "message": "..."}``) at
any time; the gateway reads it while the job runs. This module runs on the
cluster, so it only uses the standard library.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

INPUTS_FILE = "inputs.json"
OUTPUTS_FILE = "outputs.json"
PROGRESS_FILE = "progress.json"
OUTPUTS_DIR = "outputs"


def read_inputs(workspace: Path | None = None) -> dict[str, Any]:
    root = workspace or Path.cwd()
    data = json.loads((root / INPUTS_FILE).read_text(encoding="utf-8"))
    inputs = data.get("inputs", {})
    if not isinstance(inputs, dict):
        raise ValueError("inputs.json: 'inputs' must be an object")
    return inputs


def _umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, payload: dict[str, Any]) -> None:
    """Write, then rename into place, with the mode a plain ``open()`` would give.

    mkstemp makes ``0600`` files; a gateway running as a service account reads
    them through the workspace's group, so the user's umask decides, as for
    every other file the job writes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.fchmod(fd, 0o666 & ~_umask())
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(payload, fh)
    os.replace(tmp, path)


def report_progress(percent: int, message: str = "", workspace: Path | None = None) -> None:
    root = workspace or Path.cwd()
    _atomic_write(root / PROGRESS_FILE, {"percent": int(percent), "message": message})


def output_path(name: str, workspace: Path | None = None) -> Path:
    root = workspace or Path.cwd()
    out = root / OUTPUTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    return out / name


def write_outputs(outputs: dict[str, dict[str, Any]], workspace: Path | None = None) -> None:
    root = workspace or Path.cwd()
    _atomic_write(root / OUTPUTS_FILE, {"outputs": outputs})
