"""The SSH transport: a pool of paramiko connections to one login node, one per HPC login.

* **Reuse.** One SSH connection (TCP + key exchange + authentication) per
  login, kept open and multiplexed: each command is a *session channel* on it,
  SFTP is one more. ``stats.connects`` counts real connections.
* **Bounded concurrency.** sshd refuses more than ``MaxSessions`` channels per
  connection; a semaphore per connection allows ``max_sessions - 1`` commands
  at once (one session is kept for SFTP). Waiting longer than the command
  timeout for a slot is a :class:`TransportError`.
* **Keepalive and reconnect.** Transports send keepalives; a connection found
  dead (closed socket, failed channel open) is dropped and re-made on the next
  call. A command whose *channel could not be opened* never ran, so it is
  retried once on a fresh connection; a command that died *while running* is
  retried only if it is idempotent (queries), never ``sbatch``: the caller sees
  :class:`TransportError` and the dispatcher finds the job by name on retry.
* **Host keys.** Only keys in ``known_hosts_file`` are accepted
  (``RejectPolicy``); nothing is ever added automatically.
* **Errors.** Refused/timed-out/dropped connections and unknown host keys ->
  :class:`TransportError`; sshd refusing the credential ->
  :class:`AuthenticationError`. No paramiko/socket exception escapes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import paramiko

from hpc_adapters.errors import AuthenticationError, TransportError
from hpc_adapters.ssh.channel import exchange, no_delay
from hpc_adapters.ssh.commands import CommandResult
from hpc_adapters.ssh.credentials import CredentialSource, checked_login

log = logging.getLogger(__name__)

T = TypeVar("T")
#: Exceptions that mean "the connection is broken" (socket errors are OSError).
_DROPPED = (paramiko.SSHException, EOFError, OSError)


class RemoteCommand(Protocol):
    """What the pool needs of a command object (see :mod:`.commands`)."""

    verb: str
    idempotent: bool

    def line(self) -> str:
        """The shell line, every value already quoted."""

    def stdin(self) -> bytes | None:
        """Bytes to feed on standard input, if any."""


@dataclass
class PoolStats:
    """Counters for tests, metrics and ``hpcgw sites check``."""

    connects: int = 0
    reconnects: int = 0
    commands: int = 0
    retries: int = 0
    peak_sessions: int = 0
    last_connect_seconds: float = 0.0


@dataclass
class _Connection:
    login: str
    client: paramiko.SSHClient
    transport: paramiko.Transport
    slots: threading.BoundedSemaphore
    last_used: float
    sftp_lock: threading.Lock = field(default_factory=threading.Lock)
    sftp: paramiko.SFTPClient | None = None
    sessions: int = 0

    def alive(self) -> bool:
        return self.transport.is_active()

    def close(self) -> None:
        self.client.close()


class _Dropped(Exception):
    """Internal: the connection broke; ``started`` says whether the command may have run."""

    def __init__(self, cause: BaseException, started: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.started = started


class SshPool:
    """Connections to ``host:port``, one per login; see the module docstring."""

    def __init__(
        self,
        host: str,
        port: int,
        credentials: CredentialSource,
        known_hosts_file: str,
        *,
        connect_timeout: float = 10.0,
        command_timeout: float = 60.0,
        keepalive_seconds: int = 30,
        max_sessions: int = 10,
        idle_seconds: float = 300.0,
        max_output_bytes: int = 64 * 1024 * 1024,
        on_command: Callable[[str, str], None] | None = None,
        client_factory: Callable[[], paramiko.SSHClient] = paramiko.SSHClient,
    ) -> None:
        if max_sessions < 2:
            raise ValueError("max_sessions must be at least 2 (one is kept for SFTP)")
        self.host = host
        self.port = port
        self.credentials = credentials
        self.known_hosts_file = known_hosts_file
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.keepalive_seconds = keepalive_seconds
        self.max_sessions = max_sessions
        self.idle_seconds = idle_seconds
        self.max_output_bytes = max_output_bytes
        self.on_command = on_command
        self.stats = PoolStats()
        self._client_factory = client_factory
        self._conns: dict[str, _Connection] = {}
        self._connect_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # ------------------------------------------------------- connections ----

    def _connection(self, login: str) -> _Connection:
        """A live connection for ``login``: the pooled one, or a new one."""
        with self._lock:
            self._after_fork()
            self._sweep_idle()
            conn = self._conns.get(login)
            if conn is not None and conn.alive():
                conn.last_used = time.monotonic()
                return conn
            connect_lock = self._connect_locks.setdefault(login, threading.Lock())
        with connect_lock:  # one connect per login at a time
            with self._lock:
                conn = self._conns.get(login)
                if conn is not None and conn.alive():
                    return conn
                if conn is not None:
                    self._forget(conn)
                    self.stats.reconnects += 1
            conn = self._connect(login)
            with self._lock:
                self._conns[login] = conn
            return conn

    def _connect(self, login: str) -> _Connection:
        key = self.credentials.key_for(checked_login(login))
        client = self._client_factory()
        try:
            client.get_host_keys().load(self.known_hosts_file)
        except OSError as exc:
            raise TransportError(
                f"cannot read the SSH known_hosts file {self.known_hosts_file}: {exc}"
            ) from exc
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        started = time.monotonic()
        timeout = self.connect_timeout
        try:
            client.connect(
                self.host,
                self.port,
                username=login,
                pkey=key,
                allow_agent=False,
                look_for_keys=False,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                channel_timeout=timeout,
            )
        except paramiko.AuthenticationException as exc:
            client.close()
            raise AuthenticationError(
                f"the login node {self.address} refused the SSH credential of {login!r}: {exc}"
            ) from exc
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise TransportError(
                f"the host key of {self.address} does not match {self.known_hosts_file}: {exc}"
            ) from exc
        except (*_DROPPED, ValueError) as exc:
            client.close()
            raise TransportError(f"cannot connect to {self.address} as {login}: {exc}") from exc
        transport = client.get_transport()
        if transport is None:  # pragma: no cover - connect() always sets it
            raise TransportError(f"no SSH transport to {self.address}")
        transport.set_keepalive(self.keepalive_seconds)
        no_delay(transport)
        self.stats.connects += 1
        self.stats.last_connect_seconds = time.monotonic() - started
        log.info(
            "SSH connection to %s as %s (%.3fs)",
            self.address,
            login,
            self.stats.last_connect_seconds,
        )
        slots = threading.BoundedSemaphore(self.max_sessions - 1)
        return _Connection(login, client, transport, slots, time.monotonic())

    def _forget(self, conn: _Connection) -> None:
        """Drop ``conn`` from the pool and close it (caller holds ``_lock``)."""
        if self._conns.get(conn.login) is conn:
            del self._conns[conn.login]
        conn.close()

    def _discard(self, conn: _Connection) -> None:
        with self._lock:
            self._forget(conn)

    def _sweep_idle(self) -> None:
        limit = time.monotonic() - self.idle_seconds
        for conn in [c for c in self._conns.values() if c.sessions == 0 and c.last_used < limit]:
            log.debug("closing idle SSH connection of %s", conn.login)
            self._forget(conn)

    def _after_fork(self) -> None:
        """In a forked child, the parent's connections are not ours: start afresh."""
        if os.getpid() != self._pid:
            self._conns.clear()
            self._connect_locks.clear()
            self._pid = os.getpid()

    def transport_of(self, login: str) -> paramiko.Transport | None:
        """The pooled transport of ``login``, if any (diagnostics and tests)."""
        with self._lock:
            conn = self._conns.get(login)
            return conn.transport if conn is not None else None

    def close(self) -> None:
        with self._lock:
            for conn in list(self._conns.values()):
                self._forget(conn)

    # ---------------------------------------------------------- commands ----

    def run(
        self, login: str, command: RemoteCommand, timeout: float | None = None
    ) -> CommandResult:
        """Run ``command`` as ``login``; retried once on a new connection when safe."""
        limit = timeout or self.command_timeout
        if self.on_command is not None:
            self.on_command(login, command.verb)
        self.stats.commands += 1
        for attempt in (1, 2):
            conn = self._connection(login)
            try:
                return self._run_on(conn, command, limit)
            except _Dropped as dropped:
                self._discard(conn)
                retry = attempt == 1 and (not dropped.started or command.idempotent)
                if not retry:
                    raise TransportError(
                        f"SSH connection to {self.address} lost during {command.verb}"
                        f" as {login}: {dropped.cause or type(dropped.cause).__name__}"
                    ) from dropped.cause
                self.stats.retries += 1
                log.info("SSH connection of %s lost (%s); reconnecting", login, dropped.cause)
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def _session(self, conn: _Connection, timeout: float) -> Iterator[None]:
        """Hold one of the connection's command slots (bounded below MaxSessions)."""
        if not conn.slots.acquire(timeout=timeout):
            raise TransportError(
                f"all {self.max_sessions - 1} SSH sessions of {conn.login} on {self.address}"
                f" stayed busy for {timeout:.0f}s"
            )
        try:
            with self._in_use(conn):
                yield
        finally:
            conn.slots.release()

    @contextmanager
    def _in_use(self, conn: _Connection) -> Iterator[None]:
        """Mark ``conn`` busy so the idle sweep leaves it alone."""
        with self._lock:
            conn.sessions += 1
            self.stats.peak_sessions = max(self.stats.peak_sessions, conn.sessions)
        try:
            yield
        finally:
            with self._lock:
                conn.sessions -= 1
                conn.last_used = time.monotonic()

    def _run_on(self, conn: _Connection, command: RemoteCommand, timeout: float) -> CommandResult:
        with self._session(conn, timeout):
            try:
                chan = conn.transport.open_session(timeout=self.connect_timeout)
            except _DROPPED as exc:
                if _dead(conn):
                    raise _Dropped(exc, started=False) from exc
                # The connection is fine but sshd refused this channel (e.g. MaxSessions).
                raise TransportError(f"sshd on {self.address} refused a session: {exc!r}") from exc
            try:
                return exchange(
                    chan,
                    command.verb,
                    command.line(),
                    command.stdin(),
                    timeout,
                    self.max_output_bytes,
                )
            except _DROPPED as exc:
                if _dead(conn):
                    raise _Dropped(exc, started=True) from exc
                if isinstance(exc, TimeoutError):
                    raise TransportError(
                        f"{command.verb} on {self.address} did not finish within {timeout:.0f}s"
                    ) from exc
                raise TransportError(
                    f"{command.verb} on {self.address}: the session failed: {exc!r}"
                ) from exc
            finally:
                chan.close()

    # -------------------------------------------------------------- sftp ----

    def sftp_call(self, login: str, action: Callable[[paramiko.SFTPClient], T]) -> T:
        """Run ``action`` with the login's SFTP session (one at a time per login).

        SFTP status errors (``OSError`` with the session alive) propagate for
        the caller to map. A broken session (or connection) is re-opened and
        ``action`` retried once: workspace operations are written to be repeatable.
        """
        for attempt in (1, 2):
            conn = self._connection(login)
            with conn.sftp_lock, self._in_use(conn):
                try:
                    if conn.sftp is None:
                        conn.sftp = conn.client.open_sftp()
                        channel = conn.sftp.get_channel()
                        if channel is not None:
                            channel.settimeout(self.command_timeout)
                    return action(conn.sftp)
                except _DROPPED as exc:
                    status_error = isinstance(exc, OSError) and not isinstance(exc, TimeoutError)
                    if status_error and conn.alive():
                        raise
                    cause: BaseException = exc
                    sftp, conn.sftp = conn.sftp, None
                    if sftp is not None:
                        sftp.close()
            if _dead(conn):
                self._discard(conn)
            if attempt == 2:
                raise TransportError(
                    f"SFTP to {self.address} as {login} failed: {cause!r}"
                ) from cause
            self.stats.retries += 1
            log.info("SFTP session of %s lost (%r); reopening", login, cause)
        raise AssertionError("unreachable")  # pragma: no cover


def _dead(conn: _Connection, grace: float = 0.1) -> bool:
    """True if the connection is gone (after a short grace for paramiko's reader thread
    to notice a closed socket); False if it is alive and only a channel failed."""
    deadline = time.monotonic() + grace
    while conn.alive():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True
