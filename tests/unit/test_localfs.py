"""LocalWorkspace: paths stay under the root, symlinks never lead out, writes are atomic."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import pytest

from hpc_adapters.base import HpcIdentity, WorkspaceFiles
from hpc_adapters.errors import WorkspaceError
from hpc_adapters.localfs import LocalWorkspace

pytestmark = pytest.mark.unit

IS_ROOT = os.geteuid() == 0
#: As root the workspace chowns to the user: use one that exists everywhere.
LOGIN = "nobody" if IS_ROOT else pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "work"
    r.mkdir()
    if IS_ROOT:
        r.chmod(0o755)
    return r


@pytest.fixture
def ws(root: Path) -> LocalWorkspace:
    return LocalWorkspace(str(root), HpcIdentity(LOGIN))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    o = tmp_path / "outside"
    o.mkdir()
    (o / "secret").write_text("secret")
    return o


def test_implements_the_protocol(ws: LocalWorkspace) -> None:
    assert isinstance(ws, WorkspaceFiles)


def test_mkdir_creates_parents_owned_by_the_user(ws: LocalWorkspace, root: Path) -> None:
    ws.mkdir(f"{root}/a/b/c")
    assert (root / "a" / "b" / "c").is_dir()
    st = (root / "a" / "b").stat()
    assert stat.S_IMODE(st.st_mode) == 0o750
    if IS_ROOT:
        assert st.st_uid == pwd.getpwnam(LOGIN).pw_uid
    ws.mkdir(f"{root}/a/b/c")  # idempotent


def test_write_then_read(ws: LocalWorkspace, root: Path) -> None:
    ws.write_bytes(f"{root}/job/inputs.json", b'{"x": 1}')
    assert ws.read_bytes(f"{root}/job/inputs.json", 100) == b'{"x": 1}'
    st = (root / "job" / "inputs.json").stat()
    assert stat.S_IMODE(st.st_mode) == 0o640
    if IS_ROOT:
        assert (st.st_uid, st.st_gid) == pwd.getpwnam(LOGIN)[2:4]


def test_write_replaces_atomically_and_leaves_no_temp_files(ws: LocalWorkspace, root: Path) -> None:
    path = f"{root}/j/f.txt"
    ws.write_bytes(path, b"old")
    inode = (root / "j" / "f.txt").stat().st_ino
    ws.write_bytes(path, b"new")
    assert (root / "j" / "f.txt").read_bytes() == b"new"
    assert (root / "j" / "f.txt").stat().st_ino != inode  # renamed over, not rewritten
    assert ws.listdir(f"{root}/j") == ["f.txt"]


def test_write_replaces_a_planted_symlink_instead_of_following_it(
    ws: LocalWorkspace, root: Path, outside: Path
) -> None:
    ws.mkdir(f"{root}/j")
    (root / "j" / "out").symlink_to(outside / "secret")
    ws.write_bytes(f"{root}/j/out", b"mine")
    assert (outside / "secret").read_text() == "secret"
    assert not (root / "j" / "out").is_symlink()


def test_read_missing_is_none_and_size_is_limited(ws: LocalWorkspace, root: Path) -> None:
    assert ws.read_bytes(f"{root}/nothing/here", 10) is None
    assert ws.read_bytes(f"{root}/nothing", 10) is None
    ws.write_bytes(f"{root}/big", b"x" * 11)
    with pytest.raises(WorkspaceError, match="larger"):
        ws.read_bytes(f"{root}/big", 10)
    assert ws.read_bytes(f"{root}/big", 11) == b"x" * 11


@pytest.mark.parametrize(
    "path",
    ["relative/path", "/etc/passwd", "{root}/../outside/secret", "{root}/a/../../x", "{root}-x/f"],
)
def test_paths_outside_the_root_are_refused(ws: LocalWorkspace, root: Path, path: str) -> None:
    p = path.format(root=root)
    for op in (
        lambda: ws.read_bytes(p, 10),
        lambda: ws.write_bytes(p, b""),
        lambda: ws.mkdir(p),
        lambda: ws.listdir(p),
        lambda: ws.remove_tree(p),
        lambda: ws.is_regular_file(p),
    ):
        with pytest.raises(WorkspaceError):
            op()


def test_symlinks_inside_the_root_never_lead_out(
    ws: LocalWorkspace, root: Path, outside: Path
) -> None:
    (root / "link").symlink_to(outside)
    (root / "file-link").symlink_to(outside / "secret")
    with pytest.raises(WorkspaceError):
        ws.read_bytes(f"{root}/link/secret", 100)
    with pytest.raises(WorkspaceError):
        ws.read_bytes(f"{root}/file-link", 100)
    with pytest.raises(WorkspaceError):
        ws.write_bytes(f"{root}/link/new", b"x")
    with pytest.raises(WorkspaceError):
        ws.listdir(f"{root}/link")
    with pytest.raises(WorkspaceError):
        ws.get_file(f"{root}/file-link", str(root.parent / "copy"))
    assert not (outside / "new").exists()
    assert ws.is_regular_file(f"{root}/file-link") is False
    assert ws.is_regular_file(f"{root}/link/secret") is False


def test_is_regular_file(ws: LocalWorkspace, root: Path) -> None:
    ws.write_bytes(f"{root}/d/f", b"1")
    assert ws.is_regular_file(f"{root}/d/f")
    assert not ws.is_regular_file(f"{root}/d")
    assert not ws.is_regular_file(f"{root}/d/missing")
    assert not ws.is_regular_file(f"{root}/missing/f")


def test_fifo_is_refused_without_blocking(ws: LocalWorkspace, root: Path) -> None:
    os.mkfifo(root / "pipe")
    with pytest.raises(WorkspaceError, match="not a regular file"):
        ws.read_bytes(f"{root}/pipe", 10)


def test_listdir(ws: LocalWorkspace, root: Path) -> None:
    assert ws.listdir(f"{root}/missing") == []
    ws.write_bytes(f"{root}/d/b", b"")
    ws.write_bytes(f"{root}/d/a", b"")
    assert ws.listdir(f"{root}/d") == ["a", "b"]
    assert ws.listdir(str(root)) == ["d"]


def test_put_and_get_file(ws: LocalWorkspace, root: Path, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    ws.put_file(str(src), f"{root}/j/in/data.bin")
    dst = tmp_path / "dst.bin"
    ws.get_file(f"{root}/j/in/data.bin", str(dst))
    assert dst.read_bytes() == src.read_bytes()
    with pytest.raises(WorkspaceError):
        ws.get_file(f"{root}/j/in/missing", str(dst))
    with pytest.raises(WorkspaceError):
        ws.put_file(str(tmp_path / "no-such-file"), f"{root}/j/x")


def test_remove_tree_does_not_follow_symlinks(
    ws: LocalWorkspace, root: Path, outside: Path
) -> None:
    ws.write_bytes(f"{root}/job/out/result.tif", b"data")
    (root / "job" / "out" / "escape").symlink_to(outside)
    ws.remove_tree(f"{root}/job")
    assert not (root / "job").exists()
    assert (outside / "secret").read_text() == "secret"
    ws.remove_tree(f"{root}/job")  # missing: no error
    ws.remove_tree(f"{root}/never/there")


def test_remove_tree_of_a_symlink_removes_only_the_link(
    ws: LocalWorkspace, root: Path, outside: Path
) -> None:
    (root / "link").symlink_to(outside)
    ws.remove_tree(f"{root}/link")
    assert not (root / "link").is_symlink()
    assert (outside / "secret").exists()


def test_the_root_itself_cannot_be_removed_or_written(ws: LocalWorkspace, root: Path) -> None:
    with pytest.raises(WorkspaceError):
        ws.remove_tree(str(root))
    with pytest.raises(WorkspaceError):
        ws.write_bytes(str(root) + "/", b"")


def test_relative_root_is_refused() -> None:
    with pytest.raises(WorkspaceError):
        LocalWorkspace("relative", HpcIdentity(LOGIN))


@pytest.mark.skipif(not IS_ROOT, reason="ownership lookup only happens as root")
def test_unknown_user_is_refused_as_root(root: Path) -> None:
    with pytest.raises(WorkspaceError, match="no such user"):
        LocalWorkspace(str(root), HpcIdentity("no-such-user-hpcgw"))
