"""Job workspaces over SFTP, acting as the user: :class:`SftpWorkspace`.

The same :class:`~hpc_adapters.base.WorkspaceFiles` behaviour as
:class:`~hpc_adapters.localfs.LocalWorkspace`, for a gateway that does not
share the cluster's filesystem:

* **Ownership.** The SFTP session is logged in *as the user*, so everything it
  creates belongs to the user (no ``chown``, no root). Directories get
  ``dir_mode`` and files ``file_mode`` explicitly (the server's umask is
  overridden). The workspace root must therefore let users create
  directories: ``chmod 1777`` (sticky, like ``/tmp``) or a group-shared,
  set-group-ID ``3770`` directory.
* **Paths.** The same lexical check (:func:`~hpc_adapters.localfs.workspace_parts`):
  absolute, no ``..``, under the root (as configured or as the server resolves it).
* **No symlinks.** SFTP v3 has no ``O_NOFOLLOW``; every component below the
  root is ``lstat``-ed before use and a symlink (or non-directory) is refused,
  as are symlinked files for reads. The window between that check and the
  use cannot be closed over SFTP, but every operation runs with the *user's*
  own permissions, so a symlink planted by a job can only lead the gateway to
  files the user could read or delete anyway (unlike the root-run local case).
* **Atomic writes.** Data goes to ``.<name>.<random>.tmp`` (created with
  ``O_EXCL``), which is then renamed over the target with
  ``posix-rename@openssh.com``.
* **Errors.** SFTP status errors -> :class:`WorkspaceError`; a lost connection
  is retried once by the pool, then :class:`TransportError`.
"""

from __future__ import annotations

import posixpath
import secrets
import stat
from collections.abc import Callable
from typing import TypeVar

import paramiko

from hpc_adapters.errors import WorkspaceError
from hpc_adapters.localfs import workspace_parts
from hpc_adapters.ssh.transport import SshPool

T = TypeVar("T")
_CHUNK = 256 * 1024


class _Missing(Exception):
    """Internal: a path component does not exist."""


class SftpWorkspace:
    """Workspace file operations under ``root`` over ``pool``, logged in as ``login``."""

    def __init__(
        self,
        pool: SshPool,
        login: str,
        root: str,
        *,
        real_root: str | None = None,
        dir_mode: int = 0o750,
        file_mode: int = 0o640,
    ) -> None:
        if not posixpath.isabs(root):
            raise WorkspaceError(f"workspace root must be an absolute path: {root!r}")
        self.pool = pool
        self.login = login
        self.root = posixpath.normpath(root)
        self._real_root = real_root
        self.dir_mode = dir_mode
        self.file_mode = file_mode

    # ------------------------------------------------------------- plumbing ----

    def _call(self, what: str, path: str, action: Callable[[paramiko.SFTPClient], T]) -> T:
        """Run ``action`` over SFTP; SFTP status errors become WorkspaceError."""
        try:
            return self.pool.sftp_call(self.login, action)
        except WorkspaceError:
            raise
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise WorkspaceError(f"cannot {what} {path}: {reason}") from exc

    def _roots(self, sftp: paramiko.SFTPClient) -> tuple[str, str]:
        if self._real_root is None:
            self._real_root = posixpath.normpath(sftp.normalize(self.root))
        return self.root, self._real_root

    def _parts(self, sftp: paramiko.SFTPClient, path: str) -> list[str]:
        return workspace_parts(path, self._roots(sftp))

    def _leaf(self, sftp: paramiko.SFTPClient, path: str) -> tuple[list[str], str]:
        """(parent components, leaf name); the root itself is refused."""
        parts = self._parts(sftp, path)
        if not parts:
            raise WorkspaceError(f"operation not allowed on the workspace root: {path!r}")
        return parts[:-1], parts[-1]

    def _walk(self, sftp: paramiko.SFTPClient, parts: list[str], create: bool = False) -> str:
        """The absolute directory root/parts, each component lstat-ed: no symlinks.

        Missing components are created (``dir_mode``) when ``create``; otherwise
        :class:`_Missing` is raised.
        """
        current = self.root
        for name in parts:
            current = posixpath.join(current, name)
            try:
                st = sftp.lstat(current)
            except FileNotFoundError:
                if not create:
                    raise _Missing(name) from None
                st = self._make_dir(sftp, current)
            if st.st_mode is None or not stat.S_ISDIR(st.st_mode):
                raise WorkspaceError(f"path component {name!r} is a symlink or not a directory")
        return current

    def _make_dir(self, sftp: paramiko.SFTPClient, path: str) -> paramiko.SFTPAttributes:
        try:
            sftp.mkdir(path, self.dir_mode)
            sftp.chmod(path, self.dir_mode)
        except OSError:
            pass  # raced with another creator (or refused): lstat tells which
        return sftp.lstat(path)

    # ------------------------------------------------------------- protocol ----

    def mkdir(self, path: str) -> None:
        """Create ``path`` and missing parents under the root, owned by the user."""

        def action(sftp: paramiko.SFTPClient) -> None:
            self._walk(sftp, self._parts(sftp, path), create=True)

        self._call("create", path, action)

    def write_bytes(self, path: str, data: bytes) -> None:
        """Create or replace ``path`` atomically (temp file + rename), owned by the user."""
        self._write(path, lambda out: out.write(data))

    def put_file(self, local_path: str, path: str) -> None:
        """Copy the local file ``local_path`` to ``path`` (streamed, atomic)."""

        def copy(out: paramiko.SFTPFile) -> None:
            with open(local_path, "rb") as src:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)

        try:
            with open(local_path, "rb"):
                pass
        except OSError as exc:
            raise WorkspaceError(f"cannot read local file {local_path}: {exc.strerror}") from exc
        self._write(path, copy)

    def link_file(self, local_path: str, path: str) -> bool:
        """Never possible over SFTP (the file is on the gateway's side): always False."""
        return False

    def _write(self, path: str, fill: Callable[[paramiko.SFTPFile], object]) -> None:
        def action(sftp: paramiko.SFTPClient) -> None:
            dirs, name = self._leaf(sftp, path)
            directory = self._walk(sftp, dirs, create=True)
            tmp = posixpath.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
            try:
                with sftp.open(tmp, "wbx") as out:
                    out.set_pipelined(True)
                    out.chmod(self.file_mode)
                    fill(out)
                sftp.posix_rename(tmp, posixpath.join(directory, name))
            except BaseException:
                _remove_quietly(sftp, tmp)
                raise

        self._call("write", path, action)

    def _open_regular(self, sftp: paramiko.SFTPClient, path: str) -> paramiko.SFTPFile | None:
        """An open regular file at ``path`` (not a symlink), or None when it is missing."""
        dirs, name = self._leaf(sftp, path)
        try:
            directory = self._walk(sftp, dirs)
            target = posixpath.join(directory, name)
            st = sftp.lstat(target)
        except (_Missing, FileNotFoundError):
            return None
        if st.st_mode is None or not stat.S_ISREG(st.st_mode):
            raise WorkspaceError(f"{path} is not a regular file")
        return sftp.open(target, "rb")

    def read_bytes(self, path: str, max_bytes: int) -> bytes | None:
        """Content of ``path``, ``None`` if missing; WorkspaceError if over ``max_bytes``."""

        def action(sftp: paramiko.SFTPClient) -> bytes | None:
            handle = self._open_regular(sftp, path)
            if handle is None:
                return None
            with handle:
                size = handle.stat().st_size or 0
                if size > max_bytes:
                    raise WorkspaceError(f"{path} is larger than {max_bytes} bytes")
                data = handle.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise WorkspaceError(f"{path} is larger than {max_bytes} bytes")
            return bytes(data)

        return self._call("read", path, action)

    def get_file(self, path: str, local_path: str) -> None:
        """Copy ``path`` to the local file ``local_path`` (streamed)."""

        def action(sftp: paramiko.SFTPClient) -> None:
            handle = self._open_regular(sftp, path)
            if handle is None:
                raise WorkspaceError(f"{path} does not exist")
            with handle:
                handle.prefetch()
                with open(local_path, "wb") as out:
                    while chunk := handle.read(_CHUNK):
                        out.write(chunk)

        self._call("read", path, action)

    def listdir(self, path: str) -> list[str]:
        """Sorted names in the directory ``path``; empty if it does not exist."""

        def action(sftp: paramiko.SFTPClient) -> list[str]:
            try:
                directory = self._walk(sftp, self._parts(sftp, path))
            except _Missing:
                return []
            return sorted(sftp.listdir(directory))

        return self._call("list", path, action)

    def is_regular_file(self, path: str) -> bool:
        """True for a regular file; False for a symlink, a directory or nothing."""

        def action(sftp: paramiko.SFTPClient) -> bool:
            dirs, name = self._leaf(sftp, path)
            try:
                directory = self._walk(sftp, dirs)
                st = sftp.lstat(posixpath.join(directory, name))
            except (_Missing, FileNotFoundError):
                return False
            except WorkspaceError:
                return False  # a parent is a symlink or a file
            return st.st_mode is not None and stat.S_ISREG(st.st_mode)

        return self._call("stat", path, action)

    def remove_tree(self, path: str) -> None:
        """Delete ``path`` (a tree, a file or a symlink itself); missing is not an error."""

        def action(sftp: paramiko.SFTPClient) -> None:
            dirs, name = self._leaf(sftp, path)
            try:
                directory = self._walk(sftp, dirs)
                target = posixpath.join(directory, name)
                st = sftp.lstat(target)
            except (_Missing, FileNotFoundError):
                return
            if st.st_mode is not None and stat.S_ISDIR(st.st_mode):
                _rmtree(sftp, target)
            else:
                sftp.remove(target)

        self._call("remove", path, action)


def _rmtree(sftp: paramiko.SFTPClient, directory: str) -> None:
    """Remove a directory tree without following symlinks (entries are lstat-ed)."""
    for entry in sftp.listdir_attr(directory):
        child = posixpath.join(directory, entry.filename)
        if entry.st_mode is not None and stat.S_ISDIR(entry.st_mode):
            _rmtree(sftp, child)
        else:
            try:
                sftp.remove(child)
            except FileNotFoundError:
                pass
    try:
        sftp.rmdir(directory)
    except FileNotFoundError:
        pass


def _remove_quietly(sftp: paramiko.SFTPClient, path: str) -> None:
    try:
        sftp.remove(path)
    except (OSError, paramiko.SSHException, EOFError):
        pass
