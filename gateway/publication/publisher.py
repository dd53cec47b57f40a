"""Publish a finished job's outputs and build its OGC results document.

The runner's manifest (``outputs.json``) is untrusted: every output must be a
declared output of the process, and every file must be a regular file (not a
link) directly under the workspace's ``outputs/`` folder.

Two backends (``publication.backend``):

* ``local`` (default): files are copied to the publication store
  (``<root>/<job id>/<file>``) and served by the gateway at
  ``/jobs/<job id>/outputs/<file>``;
* ``s3``: files are copied to a spool folder (``<root>/.s3-spool/<job id>/``),
  measured there (size, sha256, raster footprint), uploaded to
  ``s3://<bucket>/<prefix>/<job id>/<file>`` and the spool is emptied. Result
  hrefs are ``<public_base_url>/<key>`` when configured, else the gateway's
  ``/jobs/<job id>/outputs/<file>``, which redirects (302) to a fresh
  pre-signed URL: a link stored in the results never expires.

Either way :meth:`Publisher.publish` returns the results mapping and the
publication record kept in the job's ``extra.publication`` (for S3 with the
bucket and each object's key), and :meth:`Publisher.remove` deletes what a job
published (dismissal).
"""

from __future__ import annotations

import errno
import logging
import posixpath
import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.jobs.records import Job
from gateway.publication.trees import DIRECTORY_TYPES, TreeError, copy_tree
from gateway.publication.values import encode_value
from gateway.settings_workflow import PublicationSettings
from gateway.workflow.errors import PublicationError, TransientError
from hpc_adapters.base import WorkspaceFiles
from processes.definition import ProcessDefinition
from processes.runtime import OUTPUTS_DIR

if TYPE_CHECKING:  # boto3 is loaded only where S3 publication is configured
    from gateway.publication.s3 import Link, S3Outputs

log = logging.getLogger(__name__)

__all__ = [
    "ManifestError",
    "Publication",
    "PublicationError",
    "Publisher",
    "build_publisher",
    "s3_outputs",
]

_SAFE_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
OCTET = "application/octet-stream"
#: Folder under the publication root where files wait for their S3 upload.
SPOOL = ".s3-spool"
#: Folder under the publication root where a job's files are gathered before
#: they are renamed into place (never served).
PARTIAL = ".partial"


class ManifestError(ValueError):
    """The job's output manifest is missing, malformed or points outside its outputs."""


@dataclass(frozen=True)
class Publication:
    """What publishing a job produced."""

    #: The OGC results mapping (output id -> value or ``{"href", "type"}``).
    results: dict[str, Any]
    #: ``extra.publication``: ``published``, ``files`` (per output: file, type, size,
    #: sha256 and, on S3, key), ``bbox``; on S3 also ``backend: s3`` and ``bucket``.
    record: dict[str, Any]


@dataclass(frozen=True)
class Publisher:
    """Publishes outputs to the local store or, with ``upload``, to the ``s3`` bucket.

    ``s3`` may be set without ``upload``: links and removal then still work for
    jobs published to S3 before the backend was switched back to local.
    """

    root: Path
    base_url: str
    s3: S3Outputs | None = None
    upload: bool = False

    def job_dir(self, job_id: str) -> Path:
        return self.root / job_id

    def spool_dir(self, job_id: str) -> Path:
        return self.root / SPOOL / job_id

    def href(self, job_id: str, filename: str) -> str:
        return f"{self.base_url.rstrip('/')}/jobs/{job_id}/outputs/{filename}"

    # -- publishing ---------------------------------------------------------------

    def publish(
        self,
        job: Job,
        process: ProcessDefinition,
        manifest: dict[str, Any],
        files: WorkspaceFiles,
    ) -> Publication:
        """Copy declared file outputs out (and upload them); return results and record.

        Raises :class:`ManifestError` for a bad manifest, :class:`PublicationError`
        when the S3 upload fails or the store's filesystem is full (nothing is
        left in the store or the spool either way).
        """
        # rasterio (GDAL) is loaded by the worker only, not by the HTTP processes
        from gateway.publication.footprint import publication_record

        if not self.upload:
            # gathered in <root>/.partial/<job id> (never served), renamed into place
            # only when complete: a failed publication leaves nothing to link or serve
            partial = self.root / PARTIAL / job.id
            shutil.rmtree(partial, ignore_errors=True)
            try:
                results = self._collect(job, process, manifest, files, partial)
                record = publication_record(partial, results)
                self._move_into_place(partial, self.job_dir(job.id))
            except OSError as exc:  # the store's filesystem full or unwritable
                raise _store_error(exc) from exc
            finally:
                shutil.rmtree(partial, ignore_errors=True)
            return Publication(results, record)
        assert self.s3 is not None  # build_publisher guarantees it
        folder = self.spool_dir(job.id)
        try:
            results = self._collect(job, process, manifest, files, folder)
            record = publication_record(folder, results)
            return self._upload(job.id, folder, results, record, self.s3)
        except OSError as exc:  # the spool's filesystem full or unwritable
            _forget(self.s3, job.id)
            raise _store_error(exc) from exc
        except PublicationError as exc:
            if not isinstance(exc, TransientError):  # the job fails: no partial upload left
                _forget(self.s3, job.id)
            raise
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @staticmethod
    def _move_into_place(partial: Path, final: Path) -> None:
        """Replace the job's folder by the complete ``partial`` one (a job published
        again after a crash replaces its folder whole)."""
        shutil.rmtree(final, ignore_errors=True)
        if partial.is_dir():  # only jobs with file outputs have one
            partial.rename(final)

    def _collect(
        self,
        job: Job,
        process: ProcessDefinition,
        manifest: dict[str, Any],
        files: WorkspaceFiles,
        folder: Path,
    ) -> dict[str, Any]:
        """Copy declared file outputs into ``folder``; return the OGC results mapping."""
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
            results[name] = self._one(job, process, name, entry, mode, files, folder)
        return results

    def _one(
        self,
        job: Job,
        process: ProcessDefinition,
        name: str,
        entry: dict[str, Any],
        mode: str,
        files: WorkspaceFiles,
        folder: Path,
    ) -> Any:
        if "value" in entry:
            if mode != "reference":
                return entry["value"]
            # the value's own bytes and media type (XML as XML, text as text), not JSON
            schema = (process.outputs.get(name) or {}).get("schema") or {}
            encoded = encode_value(schema, entry["value"])
            filename = f"{name}{encoded.extension}"
            _dest(folder, filename).write_bytes(encoded.data)
            return {"href": self.href(job.id, filename), "type": encoded.media_type}
        listed = entry.get("files")
        if isinstance(listed, list):  # several files (a CWL Directory output's STAC assets)
            return [self._file(job, name, one, files, folder) for one in listed]
        return self._file(job, name, entry, files, folder)

    def _file(
        self, job: Job, name: str, entry: Any, files: WorkspaceFiles, folder: Path
    ) -> dict[str, str]:
        """One file output: copied into ``folder``, its link."""
        path = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(path, str):
            raise ManifestError(f"output '{name}': needs 'value', 'path' or 'files'")
        filename = _checked_output_file(name, path)
        source = posixpath.join(job.workspace or "", OUTPUTS_DIR, filename)
        media_type = entry.get("type") or OCTET
        if str(media_type).startswith(DIRECTORY_TYPES):
            if self.upload:
                raise PublicationError(
                    f"output '{name}' is a directory ({media_type}): directory outputs "
                    "are published to the local store only, not to S3"
                )
            try:
                copy_tree(files, source, _dest(folder, filename), f"output '{name}'")
            except TreeError as exc:
                raise ManifestError(str(exc)) from None
            return {"href": self.href(job.id, filename), "type": str(media_type)}
        if not files.is_regular_file(source):
            raise ManifestError(f"output '{name}': {path} is not a regular file")
        files.get_file(source, str(_dest(folder, filename)))
        return {"href": self.href(job.id, filename), "type": str(media_type)}

    def _upload(
        self,
        job_id: str,
        folder: Path,
        results: dict[str, Any],
        record: dict[str, Any],
        s3: S3Outputs,
    ) -> Publication:
        """Upload each recorded file; point the hrefs at the public URL when there is one."""
        facts: dict[str, Any] = {}
        for output, fact in record.get("files", {}).items():
            key = s3.key(job_id, fact["file"])
            s3.upload(folder / fact["file"], key, fact.get("type") or OCTET, fact["sha256"])
            facts[output] = {**fact, "key": key}
            log.info("job %s: output %s published to %s", job_id, output, s3.where(key))
        if s3.settings.public_base_url:
            results = {
                name: {**value, "href": s3.link(facts[name]["key"]).href}
                if name in facts and isinstance(value, dict)
                else value
                for name, value in results.items()
            }
        return Publication(
            results, {**record, "backend": "s3", "bucket": s3.bucket, "files": facts}
        )

    # -- links --------------------------------------------------------------------

    def _s3_fact(self, job: Job, match: str, by_file: bool) -> tuple[str, str] | None:
        """``(bucket, key)`` of one S3-published file of ``job`` (by file or output name)."""
        record = job.extra.get("publication")
        if not isinstance(record, dict) or record.get("backend") != "s3":
            return None
        if record.get("expired") or self.s3 is None:
            return None
        for output, fact in (record.get("files") or {}).items():
            if not isinstance(fact, dict) or not isinstance(fact.get("key"), str):
                continue
            if (fact.get("file") if by_file else output) == match:
                return str(record.get("bucket") or self.s3.bucket), fact["key"]
        return None

    def location(self, job: Job, filename: str) -> str | None:
        """Where ``/jobs/<id>/outputs/<filename>`` redirects to: a fresh URL of the S3
        object, or None when the file is not on S3 (served from the local store)."""
        found = self._s3_fact(job, filename, by_file=True)
        if found is None or self.s3 is None:
            return None
        bucket, key = found
        return self.s3.link(key, bucket).href

    def asset_link(self, job: Job, output: str) -> tuple[str, datetime | None] | None:
        """The STAC asset href of ``output`` when it is on S3 (public or freshly
        pre-signed, with its expiry); None keeps the results href."""
        found = self._s3_fact(job, output, by_file=False)
        if found is None or self.s3 is None:
            return None
        bucket, key = found
        link: Link = self.s3.link(key, bucket)
        return link.href, link.expires

    # -- removal ------------------------------------------------------------------

    def remove(self, job: Job) -> int:
        """Delete everything ``job`` published (local folder, spool, S3 objects).

        Returns the bytes freed; raises :class:`PublicationError` when S3 refuses
        or cannot be reached (the caller retries later).
        """
        freed = _remove_tree(self.job_dir(job.id)) + _remove_tree(self.spool_dir(job.id))
        record = job.extra.get("publication")
        on_s3 = isinstance(record, dict) and record.get("backend") == "s3"
        if self.s3 is not None and (self.upload or on_s3):
            bucket = record.get("bucket") if on_s3 and isinstance(record, dict) else None
            freed += self.s3.delete_job(job.id, bucket)
        return freed


def _forget(s3: S3Outputs, job_id: str) -> None:
    """Best-effort deletion of what a failed upload left (S3 may refuse that too)."""
    try:
        s3.delete_job(job_id)
    except PublicationError as exc:
        log.warning("job %s: partial upload not removed: %s", job_id, exc.detail)


def _store_error(exc: OSError) -> PublicationError:
    """The job's failure when the publication store cannot take its outputs."""
    if exc.errno == errno.ENOSPC:
        return PublicationError(
            "the publication store is full (no space left on device); nothing was published"
        )
    return PublicationError(f"cannot store the outputs: {exc.strerror or exc}")


def _dest(folder: Path, filename: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder / filename


def _remove_tree(folder: Path) -> int:
    if not folder.is_dir() or folder.is_symlink():
        return 0
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    shutil.rmtree(folder, ignore_errors=True)
    return size


def _checked_output_file(name: str, path: str) -> str:
    """``outputs/<file>`` -> ``<file>``; refuses traversal, nesting and odd names."""
    norm = posixpath.normpath(path)
    head, filename = posixpath.split(norm)
    if head != OUTPUTS_DIR or not _SAFE_FILE.match(filename) or path.startswith("/"):
        raise ManifestError(f"output '{name}': path {path!r} must be {OUTPUTS_DIR}/<file name>")
    return filename


def s3_outputs(settings: PublicationSettings) -> S3Outputs | None:
    """The S3 bucket of published outputs, when one is configured."""
    if not settings.s3.bucket:
        return None
    from gateway.publication.s3 import S3Outputs

    return S3Outputs(settings.s3)


def build_publisher(settings: PublicationSettings, base_url: str) -> Publisher:
    """The publisher ``settings`` describe (uploads to S3 with ``backend: s3``)."""
    return Publisher(
        Path(settings.root).resolve(),
        base_url,
        s3=s3_outputs(settings),
        upload=settings.backend == "s3",
    )
