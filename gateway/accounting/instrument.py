"""A proxy that times every scheduler-adapter call and counts its errors.

``Sites`` is built with :func:`instrument_builder` around the real adapter
builder, so every call the gateway makes -- submit, statuses, cancel, usages,
workspace file operations -- is measured, without touching :mod:`hpc_adapters`.
Bytes written into job workspaces (staged inputs, ``inputs.json``) and copied
out of them (collected outputs) count as staging bytes ``in`` / ``out``.
The proxy changes nothing else: arguments, results and exceptions pass through.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from gateway.accounting.metrics import ADAPTER_ERRORS, ADAPTER_SECONDS, record_staging_bytes
from gateway.settings import SiteSettings
from hpc_adapters.base import (
    HpcIdentity,
    JobSpec,
    JobStatus,
    SchedulerAdapter,
    SiteLoad,
    Usage,
    WorkspaceFiles,
)

T = TypeVar("T")


def _size(local_path: str) -> int:
    try:
        return os.path.getsize(local_path)
    except OSError:
        return 0


def _timed(site: str, method: str, call: Callable[[], T]) -> T:
    started = time.perf_counter()
    try:
        return call()
    except Exception as exc:
        ADAPTER_ERRORS.labels(site=site, method=method, error=type(exc).__name__).inc()
        raise
    finally:
        ADAPTER_SECONDS.labels(site=site, method=method).observe(time.perf_counter() - started)


class InstrumentedFiles:
    """Workspace file operations, each timed as ``files.<operation>``."""

    def __init__(self, inner: WorkspaceFiles, site: str) -> None:
        self._inner = inner
        self._site = site

    def mkdir(self, path: str) -> None:
        _timed(self._site, "files.mkdir", lambda: self._inner.mkdir(path))

    def write_bytes(self, path: str, data: bytes) -> None:
        _timed(self._site, "files.write_bytes", lambda: self._inner.write_bytes(path, data))
        record_staging_bytes(len(data), site=self._site, direction="in")

    def put_file(self, local_path: str, path: str) -> None:
        _timed(self._site, "files.put_file", lambda: self._inner.put_file(local_path, path))
        record_staging_bytes(_size(local_path), site=self._site, direction="in")

    def read_bytes(self, path: str, max_bytes: int) -> bytes | None:
        return _timed(
            self._site, "files.read_bytes", lambda: self._inner.read_bytes(path, max_bytes)
        )

    def get_file(self, path: str, local_path: str) -> None:
        _timed(self._site, "files.get_file", lambda: self._inner.get_file(path, local_path))
        record_staging_bytes(_size(local_path), site=self._site, direction="out")

    def listdir(self, path: str) -> list[str]:
        return _timed(self._site, "files.listdir", lambda: self._inner.listdir(path))

    def is_regular_file(self, path: str) -> bool:
        return _timed(
            self._site, "files.is_regular_file", lambda: self._inner.is_regular_file(path)
        )

    def remove_tree(self, path: str) -> None:
        _timed(self._site, "files.remove_tree", lambda: self._inner.remove_tree(path))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class InstrumentedAdapter:
    """A :class:`SchedulerAdapter` that records latency and errors of each call."""

    def __init__(self, inner: SchedulerAdapter) -> None:
        self._inner = inner
        self.site = inner.site

    @property
    def inner(self) -> SchedulerAdapter:
        return self._inner

    def submit(self, spec: JobSpec, identity: HpcIdentity) -> str:
        return _timed(self.site, "submit", lambda: self._inner.submit(spec, identity))

    def statuses(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        return _timed(self.site, "statuses", lambda: self._inner.statuses(job_ids))

    def find_by_name(self, name: str) -> list[JobStatus]:
        return _timed(self.site, "find_by_name", lambda: self._inner.find_by_name(name))

    def find_by_names(self, names: Sequence[str], since: datetime) -> dict[str, list[JobStatus]]:
        return _timed(self.site, "find_by_names", lambda: self._inner.find_by_names(names, since))

    def cancel(self, job_id: str, identity: HpcIdentity) -> None:
        _timed(self.site, "cancel", lambda: self._inner.cancel(job_id, identity))

    def usages(self, job_ids: Iterable[str]) -> dict[str, Usage]:
        ids = list(job_ids)
        return _timed(self.site, "usages", lambda: self._inner.usages(ids))

    def load(self) -> SiteLoad:
        return _timed(self.site, "load", self._inner.load)

    def associations(self) -> dict[str, frozenset[str]]:
        return _timed(self.site, "associations", self._inner.associations)

    def files(self, identity: HpcIdentity) -> WorkspaceFiles:
        return InstrumentedFiles(self._inner.files(identity), self.site)

    def check(self) -> dict[str, str]:
        return _timed(self.site, "check", self._inner.check)

    def close(self) -> None:
        self._inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def instrument_builder(
    builder: Callable[[str, SiteSettings], SchedulerAdapter],
) -> Callable[[str, SiteSettings], SchedulerAdapter]:
    """Wrap an adapter builder (``gateway.sites.build_adapter``) with the proxy."""

    def build(name: str, site: SiteSettings) -> SchedulerAdapter:
        return InstrumentedAdapter(builder(name, site))

    return build
