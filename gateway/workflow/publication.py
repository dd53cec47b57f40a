"""Publish a finished job's outputs and build its OGC results document.

The runner's manifest (``outputs.json``) is untrusted: every output must be a
declared output of the process, and every file must be a regular file (not a
link) directly under the workspace's ``outputs/`` folder. Files are copied to
the publication store (``<root>/<job id>/<file>``) and served by the gateway at
``/jobs/<job id>/outputs/<file>``.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.jobs.records import Job
from hpc_adapters.base import WorkspaceFiles
from processes.definition import ProcessDefinition
from processes.runtime import OUTPUTS_DIR

_SAFE_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ManifestError(ValueError):
    """The job's output manifest is missing, malformed or points outside its outputs."""


@dataclass(frozen=True)
class Publisher:
    root: Path
    base_url: str

    def job_dir(self, job_id: str) -> Path:
        return self.root / job_id

    def href(self, job_id: str, filename: str) -> str:
        return f"{self.base_url.rstrip('/')}/jobs/{job_id}/outputs/{filename}"

    def publish(
        self,
        job: Job,
        process: ProcessDefinition,
        manifest: dict[str, Any],
        files: WorkspaceFiles,
    ) -> dict[str, Any]:
        """Copy declared file outputs out and return the OGC results mapping."""
        outputs = manifest.get("outputs")
        if not isinstance(outputs, dict):
            raise ManifestError("outputs.json must hold an 'outputs' object")
        requested = job.outputs_request or {}
        wanted = set(requested) or set(process.outputs)
        results: dict[str, Any] = {}
        for name, entry in outputs.items():
            if name not in process.outputs:
                raise ManifestError(f"output '{name}' is not declared by process '{process.id}'")
            if name not in wanted:
                continue
            if not isinstance(entry, dict):
                raise ManifestError(f"output '{name}': entry must be an object")
            mode = requested.get(name, {}).get("transmissionMode", "value")
            results[name] = self._one(job, name, entry, mode, files)
        return results

    def _one(
        self, job: Job, name: str, entry: dict[str, Any], mode: str, files: WorkspaceFiles
    ) -> Any:
        if "value" in entry:
            if mode != "reference":
                return entry["value"]
            filename = f"{name}.json"
            dest = self._dest(job.id, filename)
            dest.write_text(json.dumps(entry["value"]), encoding="utf-8")
            return {"href": self.href(job.id, filename), "type": "application/json"}
        path = entry.get("path")
        if not isinstance(path, str):
            raise ManifestError(f"output '{name}': needs 'value' or 'path'")
        filename = _checked_output_file(name, path)
        source = posixpath.join(job.workspace or "", OUTPUTS_DIR, filename)
        if not files.is_regular_file(source):
            raise ManifestError(f"output '{name}': {path} is not a regular file")
        files.get_file(source, str(self._dest(job.id, filename)))
        media_type = entry.get("type") or "application/octet-stream"
        return {"href": self.href(job.id, filename), "type": str(media_type)}

    def _dest(self, job_id: str, filename: str) -> Path:
        folder = self.job_dir(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / filename


def _checked_output_file(name: str, path: str) -> str:
    """``outputs/<file>`` -> ``<file>``; refuses traversal, nesting and odd names."""
    norm = posixpath.normpath(path)
    head, filename = posixpath.split(norm)
    if head != OUTPUTS_DIR or not _SAFE_FILE.match(filename) or path.startswith("/"):
        raise ManifestError(f"output '{name}': path {path!r} must be {OUTPUTS_DIR}/<file name>")
    return filename
