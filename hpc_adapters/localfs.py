"""Job workspaces on a filesystem shared by the gateway and the cluster.

:class:`LocalWorkspace` implements :class:`~hpc_adapters.base.WorkspaceFiles`
for a gateway that runs on a machine where the cluster's workspace root is
mounted (the dev cluster, or a login node).

Safety: a workspace is written by the user's jobs, so anything in it may be a
symlink planted to make the gateway read or delete files elsewhere. Paths are
therefore checked *lexically* (absolute, no ``..``, under the root) and then
opened one component at a time from a descriptor of the root with
``O_NOFOLLOW``: a symlink anywhere below the root is refused, whichever way it
points, and there is no window between checking a path and using it.
``remove_tree`` uses :func:`shutil.rmtree` with ``dir_fd`` (symlink-attack
resistant). Every ``OSError`` becomes :class:`WorkspaceError`.

Ownership: when the process runs as root (dev/demo), files and directories it
creates are ``chown``-ed to the user's uid and primary gid
(``pwd.getpwnam(login)``), so the user's job can use them -- except the
read-only cache objects placed by :meth:`LocalWorkspace.link_file`, which
keep their owner and ``0444`` (see there why). When it does not
run as root, ownership is left alone: the workspace root must then be
group-writable and set-group-ID (``chmod 2770``) with a group shared by the
service account and the users, and ``dir_mode``/``file_mode`` should grant
the group access (e.g. ``0o2770``/``0o660``).
"""

from __future__ import annotations

import errno
import os
import posixpath
import pwd
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import BinaryIO

from hpc_adapters.base import HpcIdentity
from hpc_adapters.errors import WorkspaceError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1024 * 1024


def workspace_parts(path: str, roots: Sequence[str]) -> list[str]:
    """Components of ``path`` below the first of ``roots`` it lies under (lexical check).

    ``roots`` are normalised absolute spellings of one workspace root (e.g. as
    configured and as resolved). Relative paths, NUL bytes, any ``..`` component
    and paths outside every root raise :class:`WorkspaceError`. Shared by every
    :class:`~hpc_adapters.base.WorkspaceFiles` implementation.
    """
    if not isinstance(path, str) or not posixpath.isabs(path) or "\0" in path:
        raise WorkspaceError(f"workspace path must be absolute: {path!r}")
    if ".." in path.split("/"):
        raise WorkspaceError(f"workspace path must not contain '..': {path!r}")
    norm = posixpath.normpath(path)
    for base in roots:
        if norm == base:
            return []
        if norm.startswith(base.rstrip("/") + "/"):
            return [p for p in norm[len(base) :].split("/") if p and p != "."]
    raise WorkspaceError(f"path {path!r} is outside the workspace root {roots[0]}")


class _Missing(Exception):
    """Internal: a path component does not exist."""


class _NotADirectory(WorkspaceError):
    """A path component below the root is a symlink or not a directory."""


class LocalWorkspace:
    """Workspace file operations under ``root``, acting as ``identity.login``."""

    def __init__(
        self,
        root: str,
        identity: HpcIdentity,
        *,
        dir_mode: int = 0o750,
        file_mode: int = 0o640,
    ) -> None:
        if not posixpath.isabs(root):
            raise WorkspaceError(f"workspace root must be an absolute path: {root!r}")
        self.root = posixpath.normpath(root)
        self._real_root = os.path.realpath(self.root)
        self.identity = identity
        self.dir_mode = dir_mode
        self.file_mode = file_mode
        self._owner: tuple[int, int] | None = None
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam(identity.login)
            except KeyError:
                raise WorkspaceError(f"no such user on this host: {identity.login!r}") from None
            self._owner = (entry.pw_uid, entry.pw_gid)

    # ------------------------------------------------------------- paths ----

    def _parts(self, path: str) -> list[str]:
        """Components of ``path`` below the root; raise WorkspaceError if it is not under it."""
        return workspace_parts(path, (self.root, self._real_root))

    def _leaf(self, path: str) -> tuple[list[str], str]:
        parts = self._parts(path)
        if not parts:
            raise WorkspaceError(f"operation not allowed on the workspace root: {path!r}")
        return parts[:-1], parts[-1]

    @contextmanager
    def _dir(self, parts: list[str], create: bool = False) -> Iterator[int]:
        """Yield an fd of root/parts, walking with O_NOFOLLOW; create missing dirs if asked."""
        try:
            fd = os.open(self._real_root, _DIR_FLAGS)
        except OSError as exc:
            raise WorkspaceError(f"workspace root {self.root} is not accessible: {exc}") from exc
        try:
            for name in parts:
                try:
                    nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise _Missing(name) from None
                    nxt = self._make_dir(fd, name)
                except OSError as exc:
                    raise _refused(name, exc) from exc
                os.close(fd)
                fd = nxt
            yield fd
        finally:
            os.close(fd)

    def _make_dir(self, parent_fd: int, name: str) -> int:
        created = True
        try:
            os.mkdir(name, self.dir_mode, dir_fd=parent_fd)
        except FileExistsError:
            created = False  # raced with another creator: open what is there
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except OSError as exc:
            raise _refused(name, exc) from exc
        if created:
            self._own(fd, self.dir_mode)
        return fd

    def _own(self, fd: int, mode: int) -> None:
        os.fchmod(fd, mode)
        if self._owner is not None:
            os.fchown(fd, *self._owner)

    # ---------------------------------------------------------- protocol ----

    def mkdir(self, path: str) -> None:
        """Create ``path`` and missing parents under the root, owned by the user."""
        try:
            with self._dir(self._parts(path), create=True):
                pass
        except OSError as exc:
            raise WorkspaceError(f"cannot create {path}: {exc.strerror}") from exc

    def write_bytes(self, path: str, data: bytes) -> None:
        """Create or replace ``path`` atomically (temp file + rename), owned by the user."""
        self._write(path, lambda out: out.write(data))

    def put_file(self, local_path: str, path: str) -> None:
        """Copy the local file ``local_path`` to ``path`` (streamed, atomic)."""
        try:
            src = open(local_path, "rb")
        except OSError as exc:
            raise WorkspaceError(f"cannot read local file {local_path}: {exc.strerror}") from exc
        with src:
            self._write(path, lambda out: _copy_file(src, out))

    def link_file(self, local_path: str, path: str) -> bool:
        """Hard-link the immutable local file ``local_path`` at ``path``; False if it cannot be.

        For the input cache's content-addressed objects when the cache and the
        workspaces share a filesystem: staging then costs neither a copy nor
        space. Safety -- a job must not be able to change what the cache, and
        every other job, reads through the same inode:

        * only a regular file with mode exactly ``0444``, owned by this
          process's uid, is linked, and only for a job user who is someone
          else: the job can read the inode but not write, truncate, ``chmod``
          or ``chown`` it (it is not the owner); it can only remove or replace
          its own name for it (the directory is the job's);
        * nothing is ``chown``-ed or ``chmod``-ed here (that would change the
          shared inode): a job user who owns the file (jobs run as the
          gateway's account, or as root) gets a copy from :meth:`put_file`;
        * the link is made with ``linkat`` (the source not followed) to a
          temporary name in a directory opened with ``O_NOFOLLOW``, checked to
          be that inode with that owner and mode, then renamed over ``path``.

        Returns False, having changed nothing, when the filesystem refuses
        (``EXDEV`` across filesystems; ``EPERM``, e.g. ``protected_hardlinks``
        or no hard links; ``EMLINK``), the file does not qualify, or the job's
        user is unknown here. With ``fs.protected_hardlinks=1`` (the Linux
        default) the job cannot make further links to the file either. The
        linked file counts against the owner's quota, not the user's.
        """
        try:
            src = os.lstat(local_path)
        except OSError:
            return False
        if not _immutable(src) or src.st_uid != os.geteuid():
            return False
        job_uid = self._job_uid()
        if job_uid is None or job_uid == src.st_uid:
            return False
        dirs, name = self._leaf(path)
        tmp = f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            with self._dir(dirs, create=True) as dfd:
                try:
                    os.link(local_path, tmp, dst_dir_fd=dfd, follow_symlinks=False)
                except OSError as exc:
                    if exc.errno in _CANNOT_LINK:
                        return False
                    raise
                try:
                    made = os.stat(tmp, dir_fd=dfd, follow_symlinks=False)
                    if (made.st_dev, made.st_ino, made.st_uid) != (
                        src.st_dev,
                        src.st_ino,
                        src.st_uid,
                    ) or not _immutable(made):
                        _unlink_quietly(tmp, dfd)
                        return False
                    os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
                except BaseException:
                    _unlink_quietly(tmp, dfd)
                    raise
        except _Missing as missing:  # pragma: no cover - create=True never raises it
            raise WorkspaceError(f"cannot link {path}: {missing} is missing") from None
        except OSError as exc:
            raise WorkspaceError(f"cannot link {path}: {exc.strerror}") from exc
        return True

    def _job_uid(self) -> int | None:
        """The uid the user's jobs run as (None when the login is unknown on this host)."""
        if self._owner is not None:
            return self._owner[0]
        try:
            return pwd.getpwnam(self.identity.login).pw_uid
        except KeyError:
            return None

    def _write(self, path: str, fill: Callable[[BinaryIO], object]) -> None:
        dirs, name = self._leaf(path)
        tmp = f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            with self._dir(dirs, create=True) as dfd:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                fd = os.open(tmp, flags, self.file_mode, dir_fd=dfd)
                try:
                    with os.fdopen(fd, "wb", closefd=False) as out:
                        fill(out)
                        out.flush()
                        os.fsync(fd)
                    self._own(fd, self.file_mode)
                    os.close(fd)
                    fd = -1
                    os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
                except BaseException:
                    if fd >= 0:
                        os.close(fd)
                    _unlink_quietly(tmp, dfd)
                    raise
        except _Missing as missing:  # pragma: no cover - create=True never raises it
            raise WorkspaceError(f"cannot write {path}: {missing} is missing") from None
        except OSError as exc:
            raise WorkspaceError(f"cannot write {path}: {exc.strerror}") from exc

    @contextmanager
    def _open_regular(self, path: str) -> Iterator[tuple[int, int] | None]:
        """Yield (fd, size) of a regular file at ``path``, or None when it is missing."""
        dirs, name = self._leaf(path)
        try:
            with self._dir(dirs) as dfd:
                flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
                try:
                    fd = os.open(name, flags, dir_fd=dfd)
                except FileNotFoundError:
                    yield None
                    return
                try:
                    st = os.fstat(fd)
                    if not stat.S_ISREG(st.st_mode):
                        raise WorkspaceError(f"{path} is not a regular file")
                    yield fd, st.st_size
                finally:
                    os.close(fd)
        except _Missing:
            yield None
        except OSError as exc:
            raise WorkspaceError(f"cannot read {path}: {exc.strerror}") from exc

    def read_bytes(self, path: str, max_bytes: int) -> bytes | None:
        """Content of ``path``, ``None`` if missing; WorkspaceError if over ``max_bytes``."""
        with self._open_regular(path) as opened:
            if opened is None:
                return None
            fd, size = opened
            if size > max_bytes:
                raise WorkspaceError(f"{path} is larger than {max_bytes} bytes")
            chunks: list[bytes] = []
            total = 0
            while chunk := os.read(fd, min(_CHUNK, max_bytes + 1 - total) or 1):
                chunks.append(chunk)
                total += len(chunk)
                if total > max_bytes:
                    raise WorkspaceError(f"{path} is larger than {max_bytes} bytes")
            return b"".join(chunks)

    def get_file(self, path: str, local_path: str) -> None:
        """Copy ``path`` to the local file ``local_path`` (streamed)."""
        with self._open_regular(path) as opened:
            if opened is None:
                raise WorkspaceError(f"{path} does not exist")
            fd, _ = opened
            try:
                with open(local_path, "wb") as out:
                    while chunk := os.read(fd, _CHUNK):
                        out.write(chunk)
            except OSError as exc:
                raise WorkspaceError(f"cannot copy {path} to {local_path}: {exc}") from exc

    def listdir(self, path: str) -> list[str]:
        """Sorted names in the directory ``path``; empty if it does not exist."""
        try:
            with self._dir(self._parts(path)) as dfd:
                return sorted(os.listdir(dfd))
        except _Missing:
            return []
        except OSError as exc:
            raise WorkspaceError(f"cannot list {path}: {exc.strerror}") from exc

    def is_regular_file(self, path: str) -> bool:
        """True for a regular file; False for a symlink, a directory or nothing."""
        dirs, name = self._leaf(path)
        try:
            with self._dir(dirs) as dfd:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except (_Missing, _NotADirectory, FileNotFoundError):
            return False
        except OSError as exc:
            raise WorkspaceError(f"cannot stat {path}: {exc.strerror}") from exc
        return stat.S_ISREG(st.st_mode)

    def remove_tree(self, path: str) -> None:
        """Delete ``path`` (a tree, a file or a symlink itself); missing is not an error."""
        dirs, name = self._leaf(path)
        try:
            with self._dir(dirs) as dfd:
                try:
                    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                except FileNotFoundError:
                    return
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(name, dir_fd=dfd)
                else:
                    os.unlink(name, dir_fd=dfd)
        except _Missing:
            return
        except OSError as exc:
            raise WorkspaceError(f"cannot remove {path}: {exc.strerror}") from exc


def _refused(name: str, exc: OSError) -> WorkspaceError:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return _NotADirectory(f"path component {name!r} is a symlink or not a directory")
    return WorkspaceError(f"cannot open {name!r}: {exc.strerror}")


#: linkat errors meaning "not here" (the caller copies instead).
_CANNOT_LINK = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP})
#: The only permissions of a file that may be shared by hard link: read-only for all.
_SHARED_MODE = 0o444


def _immutable(st: os.stat_result) -> bool:
    """A regular file nobody may write (``0444``, no set-id or sticky bit)."""
    return stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == _SHARED_MODE


def _unlink_quietly(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def _copy_file(src: BinaryIO, out: BinaryIO) -> None:
    """Copy in the kernel (``copy_file_range``) when it can; else through user space."""
    size = os.fstat(src.fileno()).st_size
    done = 0
    try:
        while done < size:
            n = os.copy_file_range(src.fileno(), out.fileno(), size - done)
            if n == 0:
                break
            done += n
    except OSError:
        done = 0
    if done < size:  # unsupported here (other filesystem, old kernel): plain copy
        src.seek(done)
        out.seek(done)
        shutil.copyfileobj(src, out, _CHUNK)
