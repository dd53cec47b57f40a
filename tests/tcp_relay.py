"""A TCP relay in front of a real server whose connections a test cuts when it chooses.

The one fault a real sshd will not make on request is "the connection died
while this command was running". :class:`CutRelay` sits between the SSH
adapter and the real login-node sshd: bytes pass unchanged (the SSH session,
its keys and the commands are all real) until the test :meth:`~CutRelay.hold`\\ s
the server's answers -- the command has reached sshd and runs, its answer
does not come back -- and then :meth:`~CutRelay.cut`\\ s every connection, as a
dropped network would.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class CutRelay:
    """Relays ``127.0.0.1:<port>`` to ``host:target_port``; see the module docstring."""

    def __init__(self, host: str, target_port: int) -> None:
        self.target = (host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._held = threading.Event()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self) -> None:
        """From now on the server's bytes wait in the relay (until :meth:`cut`)."""
        self._held.set()

    def cut(self) -> None:
        """Close every relayed connection (both sides), dropping what was held."""
        with self._lock:
            sockets, self._open = self._open, []
            self.cuts += 1
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._held.clear()

    def close(self) -> None:
        self._listener.close()
        self.cut()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            server = socket.create_connection(self.target, timeout=10)
            server.settimeout(None)
            with self._lock:
                self._open += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_server: bool) -> None:
        try:
            while data := src.recv(65536):
                while from_server and self._held.is_set():
                    time.sleep(0.01)  # held: the answer stays here
                    if src.fileno() < 0:
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
