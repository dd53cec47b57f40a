"""A real gateway process (``hpcgw serve --with-worker``) on a free port, for end-to-end tests.

Run as root (``make test``), the gateway runs as its service account ``hpcgw``,
not root, as a centre installs it (docs/installing.md): its state folder
(config, database, publication, cache, log) is one of :class:`GatewayDirs`,
owned by the account, it reads its own copy of the slurmrestd JWT key, and
jobs' workspaces are made in the setgid folder it shares with the users
(group ``hpcgw-work``, made by ``deploy/devcluster.sh``) with group-writable
modes. Run as another user, the tests cannot switch accounts and the gateway
runs as that user, with the root-made workspace root of the other tiers.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import JWT_KEY, REPO, REQUIRE_CLUSTER, SLURMRESTD, WORK_ROOT
from tests.polling import eventually

#: The account a centre runs the gateway as, and the setgid workspace root it
#: shares (group ``hpcgw-work``) with the users; both made by ``make cluster``.
SERVICE_ACCOUNT = "hpcgw"
SHARED_WORK = Path("/var/lib/hpcgw-work")


def service_account() -> str | None:
    """The account e2e gateways run as: :data:`SERVICE_ACCOUNT` when the tests run
    as root, None (the tests' own user: only root can switch) otherwise."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        if REQUIRE_CLUSTER:
            pytest.fail(f"no account {SERVICE_ACCOUNT}: make cluster creates it", pytrace=False)
        return None
    if not SHARED_WORK.is_dir() or SHARED_WORK.stat().st_mode & 0o2070 != 0o2070:
        pytest.fail(f"{SHARED_WORK} must be a setgid, group-writable folder (make cluster)")
    return SERVICE_ACCOUNT


@dataclass(frozen=True)
class GatewayDirs:
    """Makes gateways' state folders, like ``tmp_path_factory`` but owned by ``account``.

    pytest's own temporary folders sit under a root-only ``/tmp/pytest-of-root``
    the service account cannot enter, so these live under a folder of their own.
    """

    base: Path
    account: str | None
    factory: pytest.TempPathFactory

    def mktemp(self, name: str) -> Path:
        if self.account is None:
            return self.factory.mktemp(name)
        folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.base))
        entry = pwd.getpwnam(self.account)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        return folder


@pytest.fixture(scope="session")
def gateway_dirs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayDirs]:
    """The session's :class:`GatewayDirs`; removed at the end unless a test failed
    (the gateways' logs are then kept, and their folder printed)."""
    account = service_account()
    if account is None:
        yield GatewayDirs(tmp_path_factory.getbasetemp(), None, tmp_path_factory)
        return
    base = Path(tempfile.mkdtemp(prefix="hpcgw-e2e-"))
    os.chown(base, 0, pwd.getpwnam(account).pw_gid)
    base.chmod(0o750)  # the account may enter, nobody else
    yield GatewayDirs(base, account, tmp_path_factory)
    if request.session.testsfailed:
        print(f"\ngateway folders kept for the failures: {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def gateway_tmp(gateway_dirs: GatewayDirs, request: pytest.FixtureRequest) -> Path:
    """A state folder for this test's gateway (the gateway's ``tmp_path``)."""
    return gateway_dirs.mktemp(request.node.name[:30])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def default_site(tmp: Path) -> dict[str, object]:
    """The ``dev`` site on the hpcgw cluster, as the gateway's account can use it.

    As :data:`SERVICE_ACCOUNT`: a copy of the JWT key in ``tmp`` that only the
    account reads (as an operator hands it over) and the shared setgid workspace
    root with group-writable modes; otherwise the key and workspace root of the
    other tiers.
    """
    site: dict[str, object] = {"workspace_root": str(WORK_ROOT), "pythonpath": str(REPO)}
    account = service_account()
    if account is None:
        return {**site, "slurmrest": {"url": SLURMRESTD, "jwt_key_file": JWT_KEY}}
    entry = pwd.getpwnam(account)
    key = tmp / "slurm-jwt.key"
    shutil.copyfile(JWT_KEY, key)
    os.chown(key, entry.pw_uid, entry.pw_gid)
    key.chmod(0o400)
    return {
        **site,
        "slurmrest": {"url": SLURMRESTD, "jwt_key_file": str(key)},
        "workspace_root": str(SHARED_WORK),
        "workspace_dir_mode": "2770",
        "workspace_file_mode": "660",
    }


def write_config(tmp: Path, port: int, **extra: object) -> Path:
    """``gateway.yaml`` in ``tmp`` for a gateway on ``port``; ``extra`` replaces sections."""
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
        "sites": {"dev": default_site(tmp)} if "sites" not in extra else {},
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
def running_gateway(tmp: Path, config: Path, port: int) -> Iterator[str]:
    """Run ``hpcgw serve --with-worker`` with ``config`` (listening on ``port``) in
    ``tmp``; yield its base URL once it answers, stop it afterwards.

    As root the processes run as :data:`SERVICE_ACCOUNT` (its groups too), as a
    centre's systemd unit starts them: ``tmp`` must then be one of
    :class:`GatewayDirs` (the log file is opened here and handed over).
    """
    user = service_account()
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
def gateway_url(cluster: str, gateway_dirs: GatewayDirs) -> Iterator[str]:
    """Start ``hpcgw serve --with-worker`` and yield its base URL; stop it afterwards."""
    tmp = gateway_dirs.mktemp("gateway")
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
