"""A real gateway process (``hpcgw serve --with-worker``) on a free port, for end-to-end tests."""

from __future__ import annotations

import grp
import os
import pwd
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import JWT_KEY, REPO, SLURMRESTD, WORK_ROOT
from tests.polling import eventually


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(tmp: Path, port: int, **extra: object) -> Path:
    config = {
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "base_url": f"http://127.0.0.1:{port}",
            "workers": 2,
            "sync_timeout_seconds": 60,
        },
        "database": {"url": f"sqlite:///{tmp}/hpcgw.db"},
        "auth": {
            "mode": "none",
            "default_user": {"sub": "e2e-alice", "username": "alice", "hpc_login": "alice"},
        },
        "sites": {
            "dev": {
                "slurmrest": {"url": SLURMRESTD, "jwt_key_file": JWT_KEY},
                "workspace_root": str(WORK_ROOT),
                "pythonpath": str(REPO),
            }
        },
        "worker": {"poll_interval_seconds": 0.3},
        "publication": {"root": str(tmp / "published")},
        # the test file server listens on loopback: allow-list it (and only it)
        "workflow": {
            "egress": {"allow_cidrs": ["127.0.0.1/32"]},
            "cache": {"root": str(tmp / "cache")},
        },
        **extra,
    }
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def running_gateway(tmp: Path, config: Path, port: int, user: str | None = None) -> Iterator[str]:
    """Run ``hpcgw serve --with-worker`` with ``config`` (listening on ``port``) in
    ``tmp``; yield its base URL once it answers, stop it afterwards.

    With ``user`` the processes run as that account (its groups too), as a
    centre's systemd unit would start them; ``tmp`` and ``config`` must be
    readable by it (the log file is opened here and handed over).
    """
    log = (tmp / "gateway.log").open("wb")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    account: dict[str, object] = {}
    if user is not None:
        entry = pwd.getpwnam(user)
        groups = [g.gr_gid for g in grp.getgrall() if user in g.gr_mem]
        account = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": groups}
        env.update(HOME=entry.pw_dir, USER=user, LOGNAME=user)
    proc = subprocess.Popen(  # type: ignore[call-overload]
        [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config), "--with-worker"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp,
        start_new_session=True,
        env=env,
        **account,
    )
    url = f"http://127.0.0.1:{port}"

    def up_or_dead() -> bool:
        if proc.poll() is not None:
            return True
        try:
            return httpx.get(f"{url}/conformance", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        eventually(up_or_dead, 120, "the gateway to answer /conformance", every=0.3)
    except pytest.fail.Exception:
        proc.kill()
        proc.wait(timeout=20)
    if proc.poll() is not None:
        pytest.fail(f"gateway did not start:\n{(tmp / 'gateway.log').read_text()[-3000:]}")
    try:
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def gateway_url(cluster: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start ``hpcgw serve --with-worker`` and yield its base URL; stop it afterwards."""
    tmp = tmp_path_factory.mktemp("gateway")
    port = free_port()
    with running_gateway(tmp, write_config(tmp, port), port) as url:
        yield url


@pytest.fixture(scope="module")
def file_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A local HTTP server serving a temporary folder: (base URL, folder)."""
    root = tmp_path_factory.mktemp("served")
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


def wait_final(client: httpx.Client, job_url: str, timeout: float = 120) -> dict:
    def final() -> dict | None:
        status = client.get(job_url).json()
        return status if status["status"] in ("successful", "failed", "dismissed") else None

    return eventually(final, timeout, f"{job_url} to finish", every=0.3)
