"""Retention of published outputs and the bound on the input cache (``hpcgw cleanup``).

The publication store holds one folder per job (``<root>/<job id>/``). A
folder is removed when its job finished more than
``workflow.retention.published_days`` ago (the job record stays; its STAC
Item and output links then answer 404 and the job's ``extra.publication``
notes when the outputs expired), or when no job record owns it any more. The
input cache is trimmed to ``workflow.cache.max_bytes`` (least recently used
first). Workspaces are not touched here: dismiss removes them (the Cleaner).
"""

from __future__ import annotations

import logging
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.jobs.store import JobNotFound, JobStore
from gateway.staging.cache import ContentCache

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

    def to_dict(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "expired_jobs": self.expired_jobs,
            "orphan_folders": self.orphans,
            "published_bytes_freed": self.published_bytes,
            "cache_bytes_freed": self.cache_bytes,
            "cache_objects_evicted": self.cache_objects,
        }


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _is_job_folder(path: Path) -> bool:
    try:
        uuid.UUID(path.name)
    except ValueError:
        return False
    return path.is_dir() and not path.is_symlink()


def apply_retention(
    store: JobStore,
    publication_root: Path,
    published_days: float | None,
    cache: ContentCache | None = None,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> CleanupReport:
    """Remove expired and orphaned publication folders and trim the cache."""
    report = CleanupReport(dry_run=dry_run)
    moment = now or datetime.now(UTC)
    cutoff = moment - timedelta(days=published_days) if published_days else None
    folders = sorted(publication_root.iterdir()) if publication_root.is_dir() else []
    for folder in folders:
        if not _is_job_folder(folder):
            continue
        try:
            job = store.get(folder.name)
        except JobNotFound:
            report.orphans.append(folder.name)
            report.published_bytes += _remove(folder, dry_run)
            continue
        if cutoff is None or not job.final or job.finished is None or job.finished > cutoff:
            continue
        report.expired_jobs.append(job.id)
        report.published_bytes += _remove(folder, dry_run)
        if not dry_run:
            publication = dict(job.extra.get("publication") or {})
            publication["expired"] = moment.isoformat(timespec="seconds")
            store.update(job.id, extra={**job.extra, "publication": publication})
    if cache is not None:
        if dry_run:
            used, _count = cache.usage()
            report.cache_bytes = max(0, used - cache.max_bytes)
        else:
            report.cache_bytes, report.cache_objects = cache.evict()
    log.info("cleanup: %s", report.to_dict())
    return report


def _remove(folder: Path, dry_run: bool) -> int:
    size = _size(folder)
    if not dry_run:
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            log.warning("cleanup: cannot remove %s: %s", folder, exc)
            return 0
    return size
