"""Cached inputs hard-linked into workspaces (same filesystem) or copied (otherwise).

The safety claim is checked with the kernel's own permission checks: a process
running as the job's user reads the linked input but cannot write, truncate or
``chmod`` it, and the cache object keeps its checksum. Needs root (workspaces
are handed to ``alice``) and the workspace root of the test suite, which
``alice`` can traverse; no Slurm.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.egress import EgressPolicy
from gateway.settings_workflow import WorkflowSettings
from gateway.staging import Stager, build_stager
from hpc_adapters.base import HpcIdentity
from hpc_adapters.localfs import LocalWorkspace
from tests.conftest import WORK_ROOT, new_id
from tests.workflow_fixtures import FileServer

LOGIN = "alice"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.needs_root("hands workspaces to another user"),
]


@pytest.fixture
def work() -> Iterator[Path]:
    """A workspace root ``alice`` can traverse (the suite's), removed afterwards."""
    try:
        pwd.getpwnam(LOGIN)
    except KeyError:
        pytest.skip(f"test user {LOGIN} does not exist")
    root = WORK_ROOT / f"link-{new_id()}"
    root.mkdir(parents=True, mode=0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def make_stager(cache_root: Path) -> Stager:
    settings = WorkflowSettings(cache={"root": str(cache_root), "max_bytes": 64 * 2**20})
    return build_stager(settings, EgressPolicy(allow_cidrs=["127.0.0.1/32"]))


def serve(server: FileServer, name: str, size: int) -> str:
    data = os.urandom(size)
    (server.root / name).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def stage(stager: Stager, files: LocalWorkspace, ws: str, href: str) -> dict:
    return stager.stage({"image": {"href": href}}, files, ws)["image"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_filesystem_input_is_the_cache_object_itself(
    tmp_path: Path, work: Path, file_server: FileServer
) -> None:
    if os.stat(tmp_path).st_dev != os.stat(work).st_dev:
        pytest.skip("the test's cache and workspace root are on different filesystems")
    digest = serve(file_server, "scene.tif", 3 * 2**20)
    stager = make_stager(tmp_path / "cache")
    assert stager.cache is not None
    files = LocalWorkspace(str(work), HpcIdentity(LOGIN))
    href = file_server.href("scene.tif")
    staged = [stage(stager, files, f"{work}/job-{n}", href) for n in (1, 2)]
    assert [s["sha256"] for s in staged] == [digest, digest]
    obj = stager.cache.object_path(digest)
    placed = [work / f"job-{n}" / "inputs" / "image.tif" for n in (1, 2)]
    inodes = {os.stat(p).st_ino for p in placed}
    assert inodes == {obj.stat().st_ino}  # no copy at all: one inode, three names
    st = obj.stat()
    assert (st.st_uid, st.st_mode & 0o7777, st.st_nlink) == (0, 0o444, 3)
    stager.cache.evict(0)  # evicting the object leaves the jobs' inputs intact
    assert not obj.exists() and all(sha256(p) == digest for p in placed)


def test_other_filesystem_input_is_copied_and_owned_by_the_user(
    work: Path, file_server: FileServer
) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(work).st_dev:
        pytest.skip("no second filesystem (/dev/shm) to put the cache on")
    cache_root = shm / f"hpcgw-test-cache-{new_id()}"
    try:
        digest = serve(file_server, "scene.tif", 2**20)
        stager = make_stager(cache_root)
        assert stager.cache is not None
        files = LocalWorkspace(str(work), HpcIdentity(LOGIN))
        stage(stager, files, f"{work}/job", file_server.href("scene.tif"))
        placed = work / "job" / "inputs" / "image.tif"
        st = placed.stat()
        assert st.st_ino != stager.cache.object_path(digest).stat().st_ino
        alice = pwd.getpwnam(LOGIN).pw_uid
        assert (st.st_uid, st.st_mode & 0o7777, st.st_nlink) == (alice, 0o640, 1)
        assert sha256(placed) == digest
    finally:
        shutil.rmtree(cache_root, ignore_errors=True)


def test_jobs_running_as_the_cache_owner_get_a_copy(
    tmp_path: Path, work: Path, file_server: FileServer
) -> None:
    """A job user who owns the object could chmod it: such a job gets its own copy."""
    digest = serve(file_server, "scene.tif", 2**20)
    stager = make_stager(tmp_path / "cache")
    assert stager.cache is not None
    files = LocalWorkspace(str(work), HpcIdentity("root"))
    stage(stager, files, f"{work}/job", file_server.href("scene.tif"))
    placed = work / "job" / "inputs" / "image.tif"
    assert placed.stat().st_ino != stager.cache.object_path(digest).stat().st_ino
    assert sha256(placed) == digest


def test_only_read_only_files_of_ours_are_linked(tmp_path: Path, work: Path) -> None:
    files = LocalWorkspace(str(work), HpcIdentity(LOGIN))
    src = tmp_path / "object"
    src.write_bytes(b"x")
    for mode in (0o644, 0o664, 0o4444, 0o400):
        os.chmod(src, mode)
        assert not files.link_file(str(src), f"{work}/job/inputs/a")
    os.chmod(src, 0o444)
    alice = pwd.getpwnam(LOGIN)
    os.chown(src, alice.pw_uid, alice.pw_gid)  # owned by the job user: it could chmod it
    assert not files.link_file(str(src), f"{work}/job/inputs/a")
    os.chown(src, 0, 0)
    (tmp_path / "sym").symlink_to(src)
    assert not files.link_file(str(tmp_path / "sym"), f"{work}/job/inputs/a")
    assert files.listdir(f"{work}/job/inputs") == []  # nothing left behind
    assert files.link_file(str(src), f"{work}/job/inputs/a")
    assert os.stat(f"{work}/job/inputs/a").st_ino == src.stat().st_ino


# A process as the job's user, trying everything a job could do to its staged input.
PROBE = textwrap.dedent(
    """
    import errno, hashlib, json, os, sys
    path, elsewhere = sys.argv[1:3]
    out = {"uid": os.getuid(), "read": hashlib.sha256(open(path, "rb").read()).hexdigest()}

    def attempt(name, action):
        try:
            action()
            out[name] = "done"
        except OSError as exc:
            out[name] = errno.errorcode[exc.errno]

    attempt("open_rw", lambda: open(path, "r+b").write(b"tampered"))
    attempt("append", lambda: open(path, "ab").write(b"tampered"))
    attempt("truncate", lambda: os.truncate(path, 0))
    attempt("chmod", lambda: os.chmod(path, 0o666))
    attempt("chown", lambda: os.chown(path, os.getuid(), os.getgid()))
    attempt("utime", lambda: os.utime(path, (0, 0)))
    attempt("link_elsewhere", lambda: os.link(path, elsewhere))
    attempt("remove_own_name", lambda: os.unlink(path))
    print(json.dumps(out))
    """
)


def test_a_job_cannot_modify_the_cache_through_its_linked_input(
    tmp_path: Path, work: Path, file_server: FileServer
) -> None:
    if os.stat(tmp_path).st_dev != os.stat(work).st_dev:
        pytest.skip("the test's cache and workspace root are on different filesystems")
    digest = serve(file_server, "scene.tif", 2**20)
    stager = make_stager(tmp_path / "cache")
    assert stager.cache is not None
    files = LocalWorkspace(str(work), HpcIdentity(LOGIN))
    stage(stager, files, f"{work}/job", file_server.href("scene.tif"))
    placed = work / "job" / "inputs" / "image.tif"
    obj = stager.cache.object_path(digest)
    assert placed.stat().st_ino == obj.stat().st_ino
    alice = pwd.getpwnam(LOGIN)
    out = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, str(placed), f"{work}/job/kept"],
        user=alice.pw_uid,
        group=alice.pw_gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["uid"] == alice.pw_uid
    assert seen["read"] == digest  # the job reads its input
    for action in ("open_rw", "append", "truncate", "chmod", "chown", "utime"):
        assert seen[action] in ("EACCES", "EPERM"), (action, seen[action])
    if Path("/proc/sys/fs/protected_hardlinks").read_text().strip() == "1":
        assert seen["link_elsewhere"] == "EPERM"
    assert seen["remove_own_name"] == "done"  # its own directory: it may drop its name
    st = obj.stat()
    assert sha256(obj) == digest and (st.st_uid, st.st_mode & 0o7777) == (0, 0o444)
    # and the next job gets the intact content from the cache
    again = stage(stager, files, f"{work}/job-2", file_server.href("scene.tif"))
    assert again["sha256"] == digest and sha256(work / "job-2/inputs/image.tif") == digest
    assert file_server.state.requests["/files/scene.tif"] == 1
