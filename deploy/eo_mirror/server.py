"""A static HTTP server for the demo mirror folder, on a loopback address only.

DEVELOPMENT AND DEMO ONLY. Serves files (``GET``/``HEAD``, no listings) from
the folder :func:`deploy.eo_mirror.catalog.ensure_mirror` made; refuses to
listen on anything but a loopback IP address, so the mirror never leaves the
machine. ``deploy/eo_mirror/run.sh`` starts it in the background on
:data:`DEFAULT_PORT`; tests start :class:`MirrorServer` in-process on a free port.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger("eo_mirror")

DEFAULT_HOST = "127.0.0.1"
#: The demo's fixed port (the identity provider is on 8180, the gateway on 5000).
DEFAULT_PORT = 8190


class NotLoopback(ValueError):
    """The mirror was asked to listen on an address that is not a loopback IP address."""


def check_loopback(host: str) -> str:
    """``host`` when it is a loopback IP address literal, else :class:`NotLoopback`."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise NotLoopback(
            f"the demo mirror listens on loopback only (e.g. 127.0.0.1), not on {host!r}"
        )
    return host


class _Handler(SimpleHTTPRequestHandler):
    """Files only: no directory listings; requests logged through :mod:`logging`."""

    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".json": "application/json",
        ".tif": "image/tiff; application=geotiff; profile=cloud-optimized",
    }

    def list_directory(self, path: Any) -> None:
        self.send_error(404, "no directory listings")
        return None

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class MirrorServer:
    """The mirror folder served on ``host:port`` (0: a free port) in a background thread."""

    def __init__(self, root: Path, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self.root = root
        self.host = host
        handler = partial(_Handler, directory=str(root))
        v6 = ":" in check_loopback(host)
        self.httpd = (_Server6 if v6 else ThreadingHTTPServer)((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8190``."""
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.httpd.server_port}"

    def start(self) -> MirrorServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (``python -m deploy.eo_mirror serve``)."""
        try:
            self.httpd.serve_forever()
        finally:
            self.httpd.server_close()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
