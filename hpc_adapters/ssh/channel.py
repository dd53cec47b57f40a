"""One command on one SSH channel: exec, stdin, stdout and stderr read together."""

from __future__ import annotations

import select
import socket
import time

import paramiko

from hpc_adapters.errors import TransportError
from hpc_adapters.ssh.commands import CommandResult, normalise_text

_CHUNK = 65536


def exchange(
    chan: paramiko.Channel,
    verb: str,
    line: str,
    stdin: bytes | None,
    timeout: float,
    max_output_bytes: int,
) -> CommandResult:
    """Run ``line`` on ``chan`` and collect its result.

    stdout and stderr are drained as they arrive (waiting on the channel's
    fd), so a chatty stderr cannot fill the SSH window and deadlock the
    command. ``TimeoutError`` after ``timeout`` seconds; ``EOFError`` when the
    connection closed before an exit status; paramiko/socket errors propagate
    (the pool decides whether the connection is dead).
    """
    deadline = time.monotonic() + timeout
    chan.settimeout(timeout)
    chan.exec_command(line)
    if stdin:
        chan.sendall(stdin)
    chan.shutdown_write()
    out, err = bytearray(), bytearray()
    while True:
        while chan.recv_ready():
            out += chan.recv(_CHUNK)
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(_CHUNK)
        if len(out) + len(err) > max_output_bytes:
            raise TransportError(f"{verb} printed more than {max_output_bytes} bytes")
        drained = not chan.recv_ready() and not chan.recv_stderr_ready()
        if drained and chan.exit_status_ready() and (chan.eof_received or chan.closed):
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{verb} timed out")
        if chan.eof_received or chan.closed:
            chan.status_event.wait(min(remaining, 0.05))
        else:
            select.select([chan], [], [], min(remaining, 0.5))
    status = chan.recv_exit_status()
    if status == -1 and not chan.get_transport().is_active():
        raise EOFError("connection closed before the command's exit status")
    return CommandResult(status, normalise_text(bytes(out)), normalise_text(bytes(err)))


def no_delay(transport: paramiko.Transport) -> None:
    """Disable Nagle: without it every channel open waits ~40 ms for a delayed ACK."""
    sock = transport.sock
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
