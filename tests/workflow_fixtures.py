"""Test servers for staging: a loopback HTTP file server with the behaviours staging must
handle (ranges, validators, flaky connections, errors, redirects) and an S3 endpoint
(moto's server mode). Test fixtures only, never product code.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

CHUNK = 1 << 20


@dataclass
class ServerState:
    """What the file server serves and what it saw."""

    root: Path
    requests: Counter[str] = field(default_factory=Counter)
    log: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    flaky_left: Counter[str] = field(default_factory=Counter)
    errors_left: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _etag(path: Path) -> str:
    st = path.stat()
    return '"' + hashlib.sha1(f"{st.st_size}-{st.st_mtime_ns}".encode()).hexdigest()[:16] + '"'


class _Handler(BaseHTTPRequestHandler):
    """GET /files/<name> (ranges, ETag, 304), /flaky/<name> (drops the first attempts
    half-way), /error/<name> (503 first), /redirect?to=<url> (302)."""

    state: ServerState
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        probe = self.headers.get("Range") == "bytes=0-0"  # the gateway's admission probe
        with self.state.lock:
            if not probe:
                self.state.requests[parts.path] += 1
            self.state.log.append((parts.path, dict(self.headers.items())))
        kind, _, name = parts.path.lstrip("/").partition("/")
        if kind == "redirect":
            target = parse_qs(parts.query).get("to", ["/"])[0]
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if kind == "error":
            with self.state.lock:
                failing = self.state.errors_left[name] > 0
                self.state.errors_left[name] -= 1
            if failing:
                self._empty(503)
                return
        path = self.state.root / name
        if kind not in ("files", "flaky", "error") or "/" in name or not path.is_file():
            self._empty(404)
            return
        drop = False
        if kind == "flaky":
            with self.state.lock:
                drop = self.state.flaky_left[name] > 0
                self.state.flaky_left[name] -= 1
        self._serve(path, drop)

    def _empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _serve(self, path: Path, drop: bool) -> None:
        size = path.stat().st_size
        etag = _etag(path)
        modified = email.utils.formatdate(path.stat().st_mtime, usegmt=True)
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and self.headers.get("If-Range", etag) == etag:
            start = int(rng[6:].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(size - start))
        self.send_header("Content-Type", "image/tiff")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", modified)
        self.end_headers()
        limit = (size - start) // 2 if drop else size - start
        with open(path, "rb") as fh:
            fh.seek(start)
            sent = 0
            while sent < limit:
                chunk = fh.read(min(CHUNK, limit - sent))
                if not chunk:
                    break
                self.wfile.write(chunk)
                sent += len(chunk)
        if drop:
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(2)


@dataclass
class FileServer:
    url: str
    state: ServerState

    @property
    def root(self) -> Path:
        return self.state.root

    def href(self, name: str, kind: str = "files") -> str:
        return f"{self.url}/{kind}/{name}"


def start_file_server(root: Path) -> tuple[FileServer, ThreadingHTTPServer]:
    state = ServerState(root=root)
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return FileServer(f"http://127.0.0.1:{server.server_address[1]}", state), server


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[FileServer]:
    root = tmp_path / "served"
    root.mkdir()
    served, server = start_file_server(root)
    yield served
    server.shutdown()
    server.server_close()


@dataclass
class S3Endpoint:
    url: str
    key_file: Path
    secret_file: Path

    def client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """moto's S3 in server mode on a loopback port (a real HTTP endpoint for boto3)."""
    from moto.server import ThreadedMotoServer

    tmp = tmp_path_factory.mktemp("s3")
    key, secret = tmp / "key", tmp / "secret"
    key.write_text("testing")
    secret.write_text("testing")
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield S3Endpoint(f"http://{host}:{port}", key, secret)
    server.stop()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: object


@dataclass
class CallbackReceiver:
    """A subscriber endpoint: records POSTs; ``answers[path]`` lists statuses to give first."""

    url: str
    received: list[Received] = field(default_factory=list)
    answers: dict[str, list[int]] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]


def start_callback_receiver() -> tuple[CallbackReceiver, ThreadingHTTPServer]:
    import json
    import time

    receiver = CallbackReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            time.sleep(receiver.delay.get(self.path, 0))
            queue = receiver.answers.get(self.path, [])
            status = queue.pop(0) if queue else 200
            receiver.received.append(Received(self.path, dict(self.headers.items()), body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    return receiver, server


@pytest.fixture
def callback_receiver() -> Iterator[CallbackReceiver]:
    receiver, server = start_callback_receiver()
    yield receiver
    server.shutdown()
    server.server_close()
