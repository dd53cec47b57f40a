"""Directory outputs (Zarr stores): copied whole from a real local workspace, names
checked, symlinks refused; the outputs route's name check for files inside them."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from gateway.ogcapi.results import published_file
from gateway.publication.trees import TreeError, copy_tree
from hpc_adapters.base import HpcIdentity
from hpc_adapters.errors import WorkspaceError
from hpc_adapters.localfs import LocalWorkspace

pytestmark = pytest.mark.unit

IS_ROOT = os.getuid() == 0
LOGIN = "nobody" if IS_ROOT else pwd.getpwuid(os.getuid()).pw_name


def workspace(tmp_path: Path) -> tuple[LocalWorkspace, Path]:
    root = tmp_path / "work"
    store = root / "job" / "outputs" / "d.zarr"
    (store / "east").mkdir(parents=True)
    (store / ".zmetadata").write_text("{}")
    (store / "east" / "0.0").write_bytes(b"chunk")
    if IS_ROOT:
        for path in (root, *root.rglob("*")):
            os.chown(path, pwd.getpwnam(LOGIN).pw_uid, -1)
    return LocalWorkspace(str(root), HpcIdentity(LOGIN)), store


def test_a_store_is_copied_whole(tmp_path: Path) -> None:
    files, store = workspace(tmp_path)
    dest = tmp_path / "published" / "d.zarr"
    assert copy_tree(files, str(store), dest, "output 'd'") == 2
    assert (dest / ".zmetadata").read_text() == "{}"
    assert (dest / "east" / "0.0").read_bytes() == b"chunk"


def test_a_symlink_inside_the_store_is_refused(tmp_path: Path) -> None:
    files, store = workspace(tmp_path)
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("secret")
    (store / "north").symlink_to(secret)
    with pytest.raises(WorkspaceError):
        copy_tree(files, str(store), tmp_path / "published", "output 'd'")


def test_odd_names_and_empty_directories_are_refused(tmp_path: Path) -> None:
    files, store = workspace(tmp_path)
    with pytest.raises(TreeError, match="not a directory with files"):
        copy_tree(files, str(store / "missing"), tmp_path / "p1", "output 'd'")
    (store / "bad name").write_text("x")
    with pytest.raises(TreeError, match="unexpected name 'bad name'"):
        copy_tree(files, str(store), tmp_path / "p2", "output 'd'")


def test_the_route_serves_files_inside_a_published_directory_only(tmp_path: Path) -> None:
    (tmp_path / "job" / "d.zarr" / "east").mkdir(parents=True)
    (tmp_path / "job" / "d.zarr" / ".zmetadata").write_text("{}")
    (tmp_path / "job" / "d.zarr" / "east" / "0.0").write_text("c")
    (tmp_path / "job" / ".hidden").write_text("h")
    assert published_file(tmp_path, "job", "d.zarr/.zmetadata") is not None
    assert published_file(tmp_path, "job", "d.zarr/east/0.0") is not None
    for name in ("d.zarr", ".hidden", "d.zarr/../.hidden", "d.zarr//east", "d.zarr/east/"):
        assert published_file(tmp_path, "job", name) is None, name
