"""Stage inputs given by reference into a job workspace.

An input ``{"href": "https://..."}`` is downloaded (streamed, size- and
time-limited, so memory stays bounded) and placed in the workspace under
``inputs/``; the runner then sees ``{"href": ..., "path": "inputs/<file>"}``.
File names are derived from the input id, never from the URL, so a hostile
URL cannot choose a path.
"""

from __future__ import annotations

import logging
import posixpath
import re
import tempfile
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from hpc_adapters.base import WorkspaceFiles

log = logging.getLogger(__name__)

_SAFE_EXT = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
_CHUNK = 1 << 20


class StagingError(Exception):
    """An input could not be staged. ``transient`` errors are retried by the worker."""

    def __init__(self, detail: str, *, transient: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.transient = transient


def _extension(href: str) -> str:
    ext = posixpath.splitext(urlsplit(href).path)[1]
    return ext.lower() if _SAFE_EXT.match(ext) else ""


class Stager:
    """Downloads referenced inputs and puts them into workspaces."""

    def __init__(
        self,
        max_bytes: int = 10 * 1024**3,
        timeout: float = 60.0,
        client_factory: Callable[[], httpx.Client] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._client_factory = client_factory or (
            lambda: httpx.Client(timeout=timeout, follow_redirects=True, max_redirects=5)
        )

    def stage(
        self, inputs: dict[str, Any], files: WorkspaceFiles, workspace: str
    ) -> dict[str, Any]:
        """Return ``inputs`` with every reference replaced by its staged form."""
        staged: dict[str, Any] = {}
        for name, value in inputs.items():
            if isinstance(value, list):
                staged[name] = [
                    self._stage_one(f"{name}_{i}", v, files, workspace) for i, v in enumerate(value)
                ]
            else:
                staged[name] = self._stage_one(name, value, files, workspace)
        return staged

    def _stage_one(self, name: str, value: Any, files: WorkspaceFiles, workspace: str) -> Any:
        if not (isinstance(value, dict) and "href" in value):
            return value
        href = str(value["href"])
        rel = posixpath.join("inputs", name + _extension(href))
        with tempfile.NamedTemporaryFile(prefix="hpcgw-stage-") as tmp:
            size = self._download(href, tmp)
            tmp.flush()
            files.put_file(tmp.name, posixpath.join(workspace, rel))
        log.info("staged input %s (%d bytes) from %s", name, size, href)
        return {**value, "path": rel, "size": size}

    def _download(self, href: str, sink: Any) -> int:
        size = 0
        try:
            with self._client_factory() as client, client.stream("GET", href) as resp:
                if resp.status_code >= 500:
                    raise StagingError(
                        f"{href}: server answered {resp.status_code}", transient=True
                    )
                if resp.status_code >= 400:
                    raise StagingError(f"{href}: server answered {resp.status_code}")
                for chunk in resp.iter_bytes(_CHUNK):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise StagingError(f"{href}: larger than the {self.max_bytes}-byte limit")
                    sink.write(chunk)
        except httpx.TimeoutException:
            raise StagingError(f"{href}: timed out", transient=True) from None
        except httpx.TransportError as exc:
            raise StagingError(f"{href}: cannot be fetched ({exc})", transient=True) from None
        except httpx.HTTPError as exc:
            raise StagingError(f"{href}: {exc}") from None
        return size
