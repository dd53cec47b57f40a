"""Retention of published outputs and the bound on the input cache (``hpcgw cleanup``).

The publication store holds one folder per job (``<root>/<job id>/``), and
with the S3 backend one key prefix per job (``<prefix>/<job id>/``). A job's
outputs are removed when it finished more than
``workflow.retention.published_days`` ago (the job record stays; its STAC
Item and output links then answer 404 and the job's ``extra.publication``
notes when the outputs expired), or when no job record owns them any more.
The input cache is trimmed to ``workflow.cache.max_bytes`` (least recently
used first). Workspaces are not touched here: dismiss removes them (the Cleaner).
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from gateway.jobs.records import Job, JobUpdate
from gateway.jobs.store import JobNotFound, JobStore
from gateway.staging.cache import ContentCache
from gateway.workflow.errors import PublicationError

if TYPE_CHECKING:  # boto3 is loaded only where S3 publication is configured
    from gateway.publication.s3 import S3Outputs

log = logging.getLogger(__name__)


@dataclass
class CleanupReport:
    """What a clean-up run removed (or would remove, when dry)."""

    expired_jobs: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    published_bytes: int = 0
    cache_bytes: int = 0
    cache_objects: int = 0
    dry_run: bool = False
    #: What could not be removed this time (a later run tries again).
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "expired_jobs": self.expired_jobs,
            "orphan_folders": self.orphans,
            "published_bytes_freed": self.published_bytes,
            "cache_bytes_freed": self.cache_bytes,
            "cache_objects_evicted": self.cache_objects,
            "errors": self.errors,
        }


class _Area(Protocol):
    """Where published outputs live, one entry per job id."""

    def job_ids(self) -> Iterable[str]: ...

    def remove(self, job_id: str, dry_run: bool) -> int:
        """Delete the job's outputs (or only measure them when dry); bytes concerned."""
        ...


def _is_job_folder(path: Path) -> bool:
    try:
        uuid.UUID(path.name)
    except ValueError:
        return False
    return path.is_dir() and not path.is_symlink()


@dataclass(frozen=True)
class _Folders:
    """The local publication store: ``<root>/<job id>/``."""

    root: Path

    def job_ids(self) -> list[str]:
        folders = sorted(self.root.iterdir()) if self.root.is_dir() else []
        return [folder.name for folder in folders if _is_job_folder(folder)]

    def remove(self, job_id: str, dry_run: bool) -> int:
        folder = self.root / job_id
        size = sum(
            p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
        )
        if not dry_run:
            try:
                shutil.rmtree(folder)
            except OSError as exc:
                log.warning("cleanup: cannot remove %s: %s", folder, exc)
                return 0
        return size


@dataclass(frozen=True)
class _Bucket:
    """The S3 publication prefix: ``<prefix>/<job id>/``."""

    s3: S3Outputs

    def job_ids(self) -> list[str]:
        return self.s3.job_ids()

    def remove(self, job_id: str, dry_run: bool) -> int:
        return self.s3.job_bytes(job_id) if dry_run else self.s3.delete_job(job_id)


def _expired(job: Job, cutoff: datetime | None) -> bool:
    return cutoff is not None and job.final and job.finished is not None and job.finished <= cutoff


def apply_retention(
    store: JobStore,
    publication_root: Path,
    published_days: float | None,
    cache: ContentCache | None = None,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    s3: S3Outputs | None = None,
) -> CleanupReport:
    """Remove expired and orphaned published outputs (local, and S3 when given) and trim
    the cache. An S3 error is reported and leaves that job for the next run."""
    report = CleanupReport(dry_run=dry_run)
    moment = now or datetime.now(UTC)
    cutoff = moment - timedelta(days=published_days) if published_days else None
    areas: list[_Area] = [_Folders(publication_root)]
    if s3 is not None:
        areas.append(_Bucket(s3))
    expired: dict[str, Job] = {}
    failed: set[str] = set()
    for area in areas:
        try:
            job_ids = list(area.job_ids())
        except PublicationError as exc:
            report.errors.append(f"cannot list the published outputs: {exc.detail}")
            continue
        for job_id in job_ids:
            try:
                job = store.get(job_id)
            except JobNotFound:
                job = None
            if job is not None and not _expired(job, cutoff):
                continue
            try:
                freed = area.remove(job_id, dry_run)
            except PublicationError as exc:
                report.errors.append(f"job {job_id}: {exc.detail}")
                failed.add(job_id)
                continue
            report.published_bytes += freed
            if job is None:
                if job_id not in report.orphans:
                    report.orphans.append(job_id)
            elif job.id not in expired:
                expired[job.id] = job
                report.expired_jobs.append(job.id)
    if not dry_run:
        for job in expired.values():
            if job.id not in failed:
                _mark_expired(store, job, moment)
    if cache is not None:
        if dry_run:
            used, _count = cache.usage()
            report.cache_bytes = max(0, used - cache.max_bytes)
        else:
            report.cache_bytes, report.cache_objects = cache.evict()
    log.info("cleanup: %s", report.to_dict())
    return report


def _mark_expired(store: JobStore, job: Job, moment: datetime) -> None:
    """Note in the job record when its outputs were removed (links then answer 404)."""
    current = store.get(job.id)
    publication = dict(current.extra.get("publication") or {})
    publication["expired"] = moment.isoformat(timespec="seconds")
    store.update(job.id, JobUpdate(extra_keys={"publication": publication}))
