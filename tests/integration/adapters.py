"""Adapters under contract test: one factory per transport, one parametrised fixture.

``tests/integration/test_adapter_contract.py`` runs the same suite against
every kind in :data:`ADAPTER_KINDS`. To add a transport, write a
``make_<kind>`` factory returning an :class:`AdapterUnderTest` and add it to
:data:`FACTORIES`. ``wire_calls`` counts scheduler round trips (HTTP requests
for slurmrestd; remote commands for SSH) so the suite can check "one call for
N jobs". The SSH kind logs in to the dev cluster's sshd (127.0.0.1:2222) with
certificates signed by the dev CA, monitors as ``HPCGW_SSH_SERVICE_USER``
(default ``bob``: the ``hpcgw`` account has no login shell there) and keeps
workspaces under ``<work root>/ssh`` (mode 1777: users create their own
directories over SFTP). The pyslurm kind runs libslurm in this process (as
root, which may submit as alice) and counts RPCs; it is skipped when pyslurm
is not installed (``deploy/install-pyslurm.sh``) unless
``HPCGW_REQUIRE_PYSLURM=1``. libslurm reads the host's slurm.conf once per
process, so it has no "unreachable" variant here
(``tests/integration/test_pyslurm_adapter.py`` covers that in a subprocess).
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from hpc_adapters.base import HpcIdentity, SchedulerAdapter, WorkspaceFiles
from hpc_adapters.localfs import LocalWorkspace
from hpc_adapters.pyslurm_adapter import PyslurmAdapter, PyslurmUnavailable
from hpc_adapters.slurmrest import MintingTokenSource, SlurmRestAdapter
from hpc_adapters.ssh import CertificateSigner, SshAdapter, SshPool
from tests.conftest import JWT_KEY, SLURMRESTD, WORK_ROOT

API_VERSION = os.environ.get("SLURMRESTD_API_VERSION", "v0.0.38")
SERVICE_USER = os.environ.get("HPCGW_SERVICE_USER", "hpcgw")
#: An address where nothing listens, for the "site unreachable" case.
UNREACHABLE_URL = "http://127.0.0.1:1"
SSH_HOST = os.environ.get("HPCGW_SSH_HOST", "127.0.0.1")
SSH_PORT = int(os.environ.get("HPCGW_SSH_PORT", "2222"))
SSH_CA_KEY = os.environ.get("HPCGW_SSH_USER_CA_KEY", "/etc/hpcgw/ssh_user_ca")
SSH_SERVICE_USER = os.environ.get("HPCGW_SSH_SERVICE_USER", "bob")
SSH_WORK_ROOT = f"{WORK_ROOT}/ssh"


@dataclass
class AdapterUnderTest:
    """An adapter plus what the contract suite needs to observe it."""

    kind: str
    adapter: SchedulerAdapter
    requests: list[str] = field(default_factory=list)
    #: Where this kind's test workspaces live.
    work_root: str = str(WORK_ROOT)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def wire_calls(self) -> int:
        return len(self.requests)

    def reset_calls(self) -> None:
        self.requests.clear()

    def close(self) -> None:
        self.adapter.close()
        for cleanup in self.cleanups:
            cleanup()


def local_files(identity: HpcIdentity) -> WorkspaceFiles:
    return LocalWorkspace(str(WORK_ROOT), identity)


def make_slurmrest(base_url: str = SLURMRESTD) -> AdapterUnderTest:
    """SlurmRestAdapter on the dev cluster, with an httpx hook counting requests."""
    seen: list[str] = []

    def count(request: httpx.Request) -> None:
        seen.append(f"{request.method} {request.url.path}")

    client = httpx.Client(timeout=10.0, event_hooks={"request": [count]})
    adapter = SlurmRestAdapter(
        site="dev",
        base_url=base_url,
        api_version=API_VERSION,
        token_source=MintingTokenSource(JWT_KEY, lifespan=600),
        service_user=SERVICE_USER,
        files_factory=local_files,
        timeout=10.0,
        client=client,
    )
    return AdapterUnderTest("slurmrest", adapter, requests=seen, cleanups=[client.close])


@functools.cache
def ssh_known_hosts(host: str = SSH_HOST, port: int = SSH_PORT) -> str:
    """A known_hosts file for the dev sshd, made once per test run with ssh-keyscan."""
    out = subprocess.run(
        ["ssh-keyscan", "-p", str(port), host], capture_output=True, text=True, timeout=30
    )
    path = Path(tempfile.mkdtemp(prefix="hpcgw-known-hosts-"), "known_hosts")
    path.write_text(out.stdout)
    return str(path)


def make_ssh_pool(target: str = f"{SSH_HOST}:{SSH_PORT}", **kw: object) -> SshPool:
    """An SshPool on the dev sshd (``host:port``), with certificates from the dev CA."""
    host, _, port = target.rpartition(":")
    kw.setdefault("connect_timeout", 10.0)
    kw.setdefault("command_timeout", 60.0)
    return SshPool(
        host,
        int(port),
        CertificateSigner(SSH_CA_KEY, 5),
        ssh_known_hosts(),
        **kw,  # type: ignore[arg-type]
    )


def make_ssh(target: str = f"{SSH_HOST}:{SSH_PORT}") -> AdapterUnderTest:
    """SshAdapter on the dev cluster's sshd, counting remote commands."""
    seen: list[str] = []
    pool = make_ssh_pool(target, on_command=lambda login, verb: seen.append(f"{login}: {verb}"))
    if os.geteuid() == 0:
        os.makedirs(SSH_WORK_ROOT, exist_ok=True)
        os.chmod(SSH_WORK_ROOT, 0o1777)  # users create their own job directories over SFTP
    adapter = SshAdapter("dev", pool, SSH_SERVICE_USER, SSH_WORK_ROOT)
    return AdapterUnderTest("ssh", adapter, requests=seen, work_root=SSH_WORK_ROOT)


def make_pyslurm(_target: str = "") -> AdapterUnderTest:
    """PyslurmAdapter in this process (libslurm uses the host's slurm.conf), counting RPCs."""
    seen: list[str] = []
    try:
        adapter = PyslurmAdapter("dev", local_files, on_call=seen.append)
    except PyslurmUnavailable as exc:
        if os.environ.get("HPCGW_REQUIRE_PYSLURM") == "1":
            raise
        pytest.skip(f"pyslurm not installed: {exc}")
    return AdapterUnderTest("pyslurm", adapter, requests=seen)


FACTORIES: dict[str, Callable[[str], AdapterUnderTest]] = {
    "slurmrest": make_slurmrest,
    "ssh": make_ssh,
    "pyslurm": make_pyslurm,
}
ADAPTER_KINDS = list(FACTORIES)
#: Where each kind's factory points for the dev cluster (default: the slurmrestd URL).
LIVE: dict[str, str] = {"ssh": f"{SSH_HOST}:{SSH_PORT}"}
#: Where each kind's factory points for an unreachable site.
UNREACHABLE: dict[str, str] = {"slurmrest": UNREACHABLE_URL, "ssh": "127.0.0.1:1"}


@pytest.fixture(params=ADAPTER_KINDS)
def adapter_under_test(request: pytest.FixtureRequest, cluster: str) -> Iterator[AdapterUnderTest]:
    """Each adapter kind, connected to the running dev cluster."""
    if os.geteuid() != 0:
        pytest.skip("the contract suite creates workspaces owned by alice: run it as root")
    under_test = FACTORIES[request.param](LIVE.get(request.param, cluster))
    yield under_test
    under_test.close()


@pytest.fixture(params=list(UNREACHABLE))
def unreachable_adapter(request: pytest.FixtureRequest) -> Iterator[AdapterUnderTest]:
    """Each adapter kind, pointed at a site where nothing answers."""
    under_test = FACTORIES[request.param](UNREACHABLE[request.param])
    yield under_test
    under_test.close()
