"""A content-addressed cache of fetched inputs, bounded in size by LRU eviction.

Layout under ``root``::

    objects/ab/<sha256>      the content, named by its checksum (shared by all URLs)
    refs/<sha256 of key>.json  {key, sha256, size, etag, last_modified, fetched}
    locks/<sha256 of key>.lock one flock per source: concurrent jobs fetch it once
    tmp/                      downloads in progress and per-use hard links

An object's mtime is its last use; :meth:`ContentCache.evict` removes the
least recently used objects until the total is under ``max_bytes``. A job
uses an object through a hard link made under the source's lock
(:meth:`ContentCache.checkout`), so eviction never pulls a file from under a
copy in progress. Several gateway processes may share one cache folder.

Objects are immutable: mode ``0444``, owned by the gateway's account, never
``chown``-ed or written after :meth:`ContentCache.commit`. That is what lets
the stager hard-link them into job workspaces on the same filesystem
(:meth:`~hpc_adapters.localfs.LocalWorkspace.link_file`): a job, running as
another user, can read the object but neither write, truncate nor ``chmod``
it. Evicting an object only unlinks its name here; workspaces that link it
keep the content until they are removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from gateway.staging.base import Validators

log = logging.getLogger(__name__)

#: Permissions of a stored object: readable by all, writable by none.
OBJECT_MODE = 0o444


@dataclass(frozen=True)
class CacheEntry:
    """A cached source: its key, content checksum, size and validators."""

    key: str
    sha256: str
    size: int
    validators: Validators
    fetched: float


class ContentCache:
    """sha256-addressed objects plus per-source references; see the module docstring."""

    def __init__(self, root: Path, max_bytes: int, fresh_seconds: float) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.fresh_seconds = fresh_seconds
        for sub in ("objects", "refs", "locks", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- paths ----------------------------------------------------------------

    @staticmethod
    def _key_id(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    def object_path(self, sha256: str) -> Path:
        return self.root / "objects" / sha256[:2] / sha256

    def _ref_path(self, key: str) -> Path:
        return self.root / "refs" / f"{self._key_id(key)}.json"

    # -- locking --------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """Exclusive use of one source across threads and processes."""
        path = self.root / "locks" / f"{self._key_id(key)}.lock"
        with open(path, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- entries --------------------------------------------------------------

    def lookup(self, key: str) -> CacheEntry | None:
        """The entry for ``key`` if its object is still present."""
        try:
            data = json.loads(self._ref_path(key).read_text(encoding="utf-8"))
            entry = CacheEntry(
                key=key,
                sha256=str(data["sha256"]),
                size=int(data["size"]),
                validators=Validators(data.get("etag"), data.get("last_modified")),
                fetched=float(data["fetched"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return entry if self.object_path(entry.sha256).is_file() else None

    def fresh(self, entry: CacheEntry) -> bool:
        return time.time() - entry.fetched < self.fresh_seconds

    def revalidated(self, entry: CacheEntry) -> CacheEntry:
        """Record that the source confirmed ``entry`` (a 304 or equal ETag)."""
        renewed = CacheEntry(entry.key, entry.sha256, entry.size, entry.validators, time.time())
        self._write_ref(renewed)
        return renewed

    @contextlib.contextmanager
    def download_file(self) -> Iterator[tuple[Path, BinaryIO]]:
        """A temporary file in the cache's filesystem; removed unless committed."""
        path = self.root / "tmp" / f"dl-{secrets.token_hex(8)}"
        try:
            with open(path, "w+b") as fh:
                yield path, fh
        finally:
            path.unlink(missing_ok=True)

    def commit(
        self, key: str, tmp: Path, sha256: str, size: int, validators: Validators
    ) -> CacheEntry:
        """Move a finished download into the store (or drop it if the content is known)."""
        target = self.object_path(sha256)
        target.parent.mkdir(exist_ok=True)
        if target.is_file():
            tmp.unlink(missing_ok=True)
        else:
            os.chmod(tmp, OBJECT_MODE)
            os.replace(tmp, target)
        entry = CacheEntry(key, sha256, size, validators, time.time())
        self._write_ref(entry)
        return entry

    def _write_ref(self, entry: CacheEntry) -> None:
        data = {
            "key": entry.key,
            "sha256": entry.sha256,
            "size": entry.size,
            "etag": entry.validators.etag,
            "last_modified": entry.validators.last_modified,
            "fetched": entry.fetched,
        }
        path = self._ref_path(entry.key)
        tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)

    @contextlib.contextmanager
    def checkout(self, entry: CacheEntry) -> Iterator[Path]:
        """A private hard link to the entry's object for the duration of a copy or link.

        The object is read-only (``0444``; objects stored by older versions are
        made so here). Raises FileNotFoundError when it was evicted meanwhile.
        """
        obj = self.object_path(entry.sha256)
        link = self.root / "tmp" / f"use-{secrets.token_hex(8)}"
        os.link(obj, link, follow_symlinks=False)
        if stat.S_IMODE(os.lstat(link).st_mode) != OBJECT_MODE:
            os.chmod(link, OBJECT_MODE)
        os.utime(obj)  # mark as recently used
        try:
            yield link
        finally:
            link.unlink(missing_ok=True)

    # -- eviction -------------------------------------------------------------

    def usage(self) -> tuple[int, int]:
        """(bytes, objects) currently stored."""
        total = count = 0
        for path in (self.root / "objects").glob("*/*"):
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
                count += 1
        return total, count

    def evict(self, max_bytes: int | None = None) -> tuple[int, int]:
        """Remove least recently used objects until under ``max_bytes``; (bytes, objects) freed."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        with open(self.root / "locks" / "evict.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            objects: list[tuple[float, int, Path]] = []
            for path in (self.root / "objects").glob("*/*"):
                with contextlib.suppress(FileNotFoundError):
                    st = path.stat()
                    objects.append((st.st_mtime, st.st_size, path))
            total = sum(size for _, size, _ in objects)
            freed = removed = 0
            for _mtime, size, path in sorted(objects):
                if total - freed <= limit:
                    break
                path.unlink(missing_ok=True)
                freed += size
                removed += 1
            self._sweep_tmp()
        if removed:
            log.info("input cache: evicted %d object(s), %d bytes", removed, freed)
        return freed, removed

    def _sweep_tmp(self, older_than: float = 24 * 3600.0) -> None:
        """Forget downloads abandoned by a crashed process."""
        cutoff = time.time() - older_than
        for path in (self.root / "tmp").iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
