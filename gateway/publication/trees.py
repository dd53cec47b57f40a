"""Directory outputs (a Zarr store): copied whole from the workspace into the store.

A process may publish a directory instead of a file when its manifest entry's
media type is one of :data:`DIRECTORY_TYPES` (``application/vnd+zarr``). The
tree is walked through the site's :class:`~hpc_adapters.base.WorkspaceFiles`
(acting as the user, symlinks refused at every level by the workspace
implementations), bounded in depth and file count, every name checked; the
gateway serves its files under ``/jobs/<id>/outputs/<dir>/<path>``
(:func:`gateway.ogcapi.results.published_file`).
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from hpc_adapters.base import WorkspaceFiles

#: Media types of outputs published as directories.
DIRECTORY_TYPES = ("application/vnd+zarr",)
MAX_DEPTH = 8
MAX_FILES = 100_000
#: Names inside a published directory (Zarr's ``.zmetadata``, ``east/0.0``); no dot-dot.
SAFE_PART = re.compile(r"^\.?[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class TreeError(ValueError):
    """A directory output that cannot be published (odd name, too deep, too many files)."""


def copy_tree(files: WorkspaceFiles, source: str, dest: Path, what: str) -> int:
    """Copy the workspace directory ``source`` to the local ``dest``; the files copied."""
    copied = _copy(files, source, dest, what, 0, 0)
    if copied == 0:
        raise TreeError(f"{what}: {source} is not a directory with files")
    return copied


def _copy(files: WorkspaceFiles, source: str, dest: Path, what: str, depth: int, count: int) -> int:
    if depth > MAX_DEPTH:
        raise TreeError(f"{what}: more than {MAX_DEPTH} directory levels")
    dest.mkdir(parents=True, exist_ok=True)
    for name in files.listdir(source):
        if not SAFE_PART.match(name):
            raise TreeError(f"{what}: unexpected name {name!r} in {source}")
        child = posixpath.join(source, name)
        if files.is_regular_file(child):
            count += 1
            if count > MAX_FILES:
                raise TreeError(f"{what}: more than {MAX_FILES} files")
            files.get_file(child, str(dest / name))
        else:
            count = _copy(files, child, dest / name, what, depth + 1, count)
    return count
