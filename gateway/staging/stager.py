"""Stage a job's inputs given by reference into its workspace.

For each ``{"href": ...}`` input (conventions in :mod:`gateway.staging.reference`)
the stager resolves STAC Items to one asset, obtains the content -- from the
content-addressed cache when it holds it, else by a streamed, size- and
time-limited fetch through the egress guard -- and places it at
``inputs/<input name><ext>`` in the workspace: a cached object is hard-linked
there when the cache and the workspace share a filesystem (read-only, see
:meth:`~hpc_adapters.localfs.LocalWorkspace.link_file`), else copied. File
names come from the input id, never from the URL. The runner then sees the input as::

    {"href": ..., "path": "inputs/image.tif", "size": 123, "sha256": "...",
     "stac": {"item": ..., "asset": "B04", "href": ..., "type": ..., "roles": [...]}}

Memory stays bounded whatever the input size: data moves in 1 MiB chunks
from the network to the cache file (or is written there by curl, see
:mod:`gateway.staging.curl`) and from there to the workspace.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import posixpath
import re
import tempfile
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import pystac

from gateway.staging.base import CHUNK, FetchResult, HashingSink, StagingError, Validators
from gateway.staging.cache import CacheEntry, ContentCache
from gateway.staging.http import HttpFetcher
from gateway.staging.reference import REMOTE_SCHEMES, Reference, local_path
from gateway.staging.s3 import S3Fetcher
from gateway.staging.stac import describe, parse_item, select_asset
from gateway.staging.stac_folder import plan_folder
from gateway.workflow.errors import TransientStagingError
from hpc_adapters.base import WorkspaceFiles

log = logging.getLogger(__name__)

_SAFE_EXT = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
INPUTS_DIR = "inputs"
#: Called with the bytes fetched so far during long downloads (lease renewal).
Heartbeat = Callable[[int], None]


class _Local(NamedTuple):
    """Content obtained for an input: a local file, its checksum and size.

    ``shared``: the file is an immutable cache object, which may be hard-linked
    into a workspace instead of copied.
    """

    path: Path
    sha256: str
    size: int
    shared: bool = False


def _extension(href: str) -> str:
    ext = posixpath.splitext(urlsplit(href).path)[1]
    return ext.lower() if _SAFE_EXT.match(ext) else ""


def _without_fragment(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc, parts.path, parts.query, ""))


class Stager:
    """Obtains referenced inputs (cache, http(s), S3, STAC, local roots) into workspaces."""

    def __init__(
        self,
        http: HttpFetcher,
        s3: S3Fetcher | None = None,
        cache: ContentCache | None = None,
        *,
        max_bytes: int = 50 * 1024**3,
        max_seconds: float = 6 * 3600.0,
        max_item_bytes: int = 4 * 1024 * 1024,
        local_roots: list[str] | None = None,
    ) -> None:
        self.http = http
        self.s3 = s3
        self.cache = cache
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.max_item_bytes = max_item_bytes
        self.local_roots = list(local_roots or [])

    # -- public -------------------------------------------------------------

    def stage(
        self,
        inputs: dict[str, Any],
        files: WorkspaceFiles,
        workspace: str,
        heartbeat: Heartbeat | None = None,
        folders: Collection[str] = (),
    ) -> dict[str, Any]:
        """Return ``inputs`` with every reference replaced by its staged form.

        A reference of an input named in ``folders`` (a CWL ``Directory``) is
        staged as a STAC catalog folder (:mod:`gateway.staging.stac_folder`).
        """
        staged: dict[str, Any] = {}
        for name, value in inputs.items():
            folder = name in folders
            if isinstance(value, list):
                staged[name] = [
                    self._stage_one(f"{name}_{i}", v, files, workspace, heartbeat, folder)
                    for i, v in enumerate(value)
                ]
            else:
                staged[name] = self._stage_one(name, value, files, workspace, heartbeat, folder)
        if self.cache is not None:
            self.cache.evict()
        return staged

    # -- one input ----------------------------------------------------------

    def _stage_one(
        self,
        name: str,
        value: Any,
        files: WorkspaceFiles,
        workspace: str,
        heartbeat: Heartbeat | None,
        folder: bool = False,
    ) -> Any:
        if folder:
            return self._stage_folder(
                name, value, files, posixpath.join(workspace, INPUTS_DIR), heartbeat
            )
        if not (isinstance(value, dict) and "href" in value):
            return value
        ref = Reference.parse(value)
        entry: dict[str, Any] = dict(value)
        source = ref.href
        if ref.is_stac:
            item = self._fetch_item(ref.href)
            selected = select_asset(item, ref)
            source = selected.href
            entry["stac"] = describe(selected, ref.href)
        rel = posixpath.join(INPUTS_DIR, name + _extension(source))
        dest = posixpath.join(workspace, rel)
        started = time.monotonic()
        linked = False
        if urlsplit(source).scheme.lower() == "file":
            path = local_path(source, self.local_roots)
            sha256, size = _hash_file(path)
            files.put_file(str(path), dest)
        else:
            sha256, size, linked = self._place(source, files, dest, heartbeat)
        log.info(
            "staged input %s: %d bytes, sha256 %s, from %s in %.1fs (%s)",
            name,
            size,
            sha256[:12],
            source,
            time.monotonic() - started,
            "linked from the cache" if linked else "copied",
        )
        entry.update(path=rel, size=size, sha256=sha256)
        return entry

    def _place(
        self, source: str, files: WorkspaceFiles, dest: str, heartbeat: Heartbeat | None
    ) -> tuple[str, int, bool]:
        """Fetch (or reuse from the cache) ``source`` into ``dest``: (sha256, size, linked)."""
        with self._obtain(source, heartbeat) as (local, sha256, size, shared):
            linked = shared and files.link_file(str(local), dest)
            if not linked:
                files.put_file(str(local), dest)
        return sha256, size, linked

    def _stage_folder(
        self, name: str, value: Any, files: WorkspaceFiles, inputs: str, heartbeat: Heartbeat | None
    ) -> dict[str, Any]:
        """A STAC Item/Catalog reference -> ``inputs/<name>/`` holding a STAC catalog."""
        if not (isinstance(value, dict) and "href" in value):
            raise StagingError(f"input {name}: a folder input is a STAC Item or Catalog href")
        ref = Reference.parse(value)
        if ref.scheme not in REMOTE_SCHEMES:
            raise StagingError(f"input {name}: a STAC href is an http(s) or s3 URL")
        raw = self._fetch_document(ref.href)
        plan = plan_folder(raw, ref.href, ref, self._fetch_document)
        for rel, data in plan.documents.items():
            dest = posixpath.join(inputs, name, rel)
            files.mkdir(posixpath.dirname(dest))
            files.write_bytes(dest, data)
        size = 0
        for asset in plan.assets:
            size += self._place(
                asset.href, files, posixpath.join(inputs, name, asset.rel), heartbeat
            )[1]
        log.info(
            "staged input %s: STAC catalog of %d item(s), %d asset(s), %d bytes, from %s",
            name,
            len(plan.item_ids),
            len(plan.assets),
            size,
            ref.href,
        )
        entry: dict[str, Any] = dict(value)
        entry.update(
            path=posixpath.join(INPUTS_DIR, name),
            size=size,
            sha256=hashlib.sha256(raw).hexdigest(),
            stac={"catalog": ref.href, "items": plan.item_ids},
        )
        return entry

    def _fetch_document(self, href: str) -> bytes:
        """A STAC document (at most ``max_item_bytes``) through the guarded fetchers."""
        buffer = io.BytesIO()
        sink = HashingSink(
            buffer, href, self.max_item_bytes, time.monotonic() + min(self.max_seconds, 300.0)
        )
        self._fetcher(href).fetch(href, sink)
        return buffer.getvalue()

    def _fetch_item(self, href: str) -> pystac.Item:
        return parse_item(self._fetch_document(href), href)

    # -- obtaining content --------------------------------------------------

    def _fetcher(self, url: str) -> HttpFetcher | S3Fetcher:
        scheme = urlsplit(url).scheme.lower()
        if scheme in ("http", "https"):
            return self.http
        if scheme == "s3":
            if self.s3 is None:
                raise StagingError(f"{url}: s3 inputs are not configured on this server")
            return self.s3
        raise StagingError(f"{url}: scheme '{scheme}' cannot be fetched")

    def _download(
        self, url: str, out: BinaryIO, known: Validators | None, heartbeat: Heartbeat | None
    ) -> FetchResult:
        sink = HashingSink(out, url, self.max_bytes, time.monotonic() + self.max_seconds, heartbeat)
        result = self._fetcher(url).fetch(url, sink, known)
        out.flush()
        return result

    @contextlib.contextmanager
    def _obtain(self, url: str, heartbeat: Heartbeat | None) -> Iterator[_Local]:
        """A local file with the content of ``url``, its sha256 and size (cached when possible)."""
        cache = self.cache
        if cache is None or cache.max_bytes == 0:
            with tempfile.NamedTemporaryFile(prefix="hpcgw-stage-") as tmp:
                result = self._download(url, tmp, None, heartbeat)  # type: ignore[arg-type]
                yield _Local(Path(tmp.name), result.sha256, result.size)
            return
        key = _without_fragment(url)
        with contextlib.ExitStack() as stack:
            with cache.locked(key):
                local = self._cached(cache, key, url, heartbeat, stack)
            yield local

    def _cached(
        self,
        cache: ContentCache,
        key: str,
        url: str,
        heartbeat: Heartbeat | None,
        stack: contextlib.ExitStack,
    ) -> _Local:
        """Under the source's lock: reuse, revalidate or fetch; then check the object out."""
        entry = cache.lookup(key)
        for _ in range(2):
            if entry is not None and cache.fresh(entry):
                log.debug("input cache hit: %s", key)
            else:
                entry, oversized = self._fill(cache, key, url, entry, heartbeat, stack)
                if oversized is not None:
                    return oversized
            assert entry is not None
            try:
                link = stack.enter_context(cache.checkout(entry))
            except FileNotFoundError:  # evicted between lookup and use: fetch again
                entry = None
                continue
            return _Local(link, entry.sha256, entry.size, shared=True)
        raise TransientStagingError(f"{url}: the input cache lost the content twice")

    def _fill(
        self,
        cache: ContentCache,
        key: str,
        url: str,
        known: CacheEntry | None,
        heartbeat: Heartbeat | None,
        stack: contextlib.ExitStack,
    ) -> tuple[CacheEntry | None, _Local | None]:
        """Fetch (or revalidate) ``url``; an input larger than the cache is used uncached."""
        path, out = stack.enter_context(cache.download_file())
        validators = known.validators if known is not None and not known.validators.empty else None
        result = self._download(url, out, validators, heartbeat)
        if result.not_modified and known is not None:
            log.debug("input cache revalidated: %s", key)
            return cache.revalidated(known), None
        if result.size > cache.max_bytes:
            log.info("input %s (%d bytes) is larger than the cache; not kept", url, result.size)
            return None, _Local(path, result.sha256, result.size)
        return cache.commit(key, path, result.sha256, result.size, result.validators), None


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise StagingError(f"cannot read {path}: {exc.strerror}") from None
    return digest.hexdigest(), size


def staged_summary(staged: dict[str, Any]) -> dict[str, Any]:
    """Checksums and sources of the staged inputs, for the job record (provenance)."""
    summary: dict[str, Any] = {}

    def add(name: str, value: Any) -> None:
        if isinstance(value, dict) and "sha256" in value:
            record = {k: value[k] for k in ("href", "path", "size", "sha256") if k in value}
            if "stac" in value:
                record["stac"] = value["stac"]
            summary[name] = record

    for name, value in staged.items():
        if isinstance(value, list):
            for i, v in enumerate(value):
                add(f"{name}_{i}", v)
        else:
            add(name, value)
    return summary
