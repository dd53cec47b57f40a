"""Adapters under contract test: one factory per transport, one parametrised fixture.

``tests/integration/test_adapter_contract.py`` runs the same suite against
every pair in :data:`PAIRS`: an adapter kind on one of the two dev clusters
(``tests/clusters.py``), ``hpcgw`` (Slurm 22.05) and ``mesocentre`` (Slurm
24.11). To add a transport, write a ``make_<kind>`` factory returning an
:class:`AdapterUnderTest` and add its pairs. ``wire_calls`` counts scheduler
round trips (HTTP requests for slurmrestd; remote commands for SSH) so the
suite can check "one call for N jobs".

* ``slurmrest`` speaks ``api_version: auto`` (v0.0.38 on hpcgw, v0.0.42 on
  mesocentre); ``slurmrest@v0.0.40`` / ``@v0.0.41`` pin the older 24.11
  dialects, whose cancel answers success whatever happened.
* ``ssh`` logs in to the cluster's login-node sshd with certificates signed by
  the dev CA, monitors as ``HPCGW_SSH_SERVICE_USER`` (default ``bob``: the
  ``hpcgw`` account has no login shell there) and keeps workspaces under
  ``<work root>/ssh`` (mode 1777: users create their own directories over SFTP).
* ``pyslurm`` runs libslurm in this process (as root, which may submit as
  alice) and counts RPCs. It exists for Slurm 22.05 only here (pyslurm is
  built for exactly one release; see docs/adapters.md), so it is paired with
  hpcgw alone, and skipped when pyslurm is not installed
  (``deploy/install-pyslurm.sh``) unless ``HPCGW_REQUIRE_PYSLURM=1``.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
import uuid
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
from tests.clusters import CLUSTERS, HPCGW, DevCluster
from tests.conftest import WORK_ROOT, require_cluster, require_root

ALICE = HpcIdentity("alice")
SERVICE_USER = os.environ.get("HPCGW_SERVICE_USER", "hpcgw")
#: An address where nothing listens, for the "site unreachable" case.
UNREACHABLE_URL = "http://127.0.0.1:1"
SSH_HOST = os.environ.get("HPCGW_SSH_HOST", "127.0.0.1")
SSH_CA_KEY = os.environ.get("HPCGW_SSH_USER_CA_KEY", "/etc/hpcgw/ssh_user_ca")
SSH_PORT = HPCGW.ssh_port
SSH_SERVICE_USER = os.environ.get("HPCGW_SSH_SERVICE_USER", "bob")
SSH_WORK_ROOT = f"{WORK_ROOT}/ssh"
#: hpcgw's dialect, for tests of v0.0.38 behaviour (e.g. its HTTP 304).
API_VERSION = HPCGW.api_version


@dataclass
class AdapterUnderTest:
    """An adapter plus what the contract suite needs to observe it."""

    kind: str
    adapter: SchedulerAdapter
    #: The cluster it talks to (its own sacct/squeue cross-check the adapter).
    cluster: DevCluster = HPCGW
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


def make_slurmrest(
    cluster: DevCluster = HPCGW, api_version: str = "auto", base_url: str | None = None
) -> AdapterUnderTest:
    """SlurmRestAdapter on a dev cluster, with an httpx hook counting requests.

    With ``auto`` the dialect probe (``GET /openapi/v3``) is made here, so the
    suite's call counts see only the calls under test.
    """
    seen: list[str] = []

    def count(request: httpx.Request) -> None:
        seen.append(f"{request.method} {request.url.path}")

    client = httpx.Client(timeout=10.0, event_hooks={"request": [count]})
    adapter = SlurmRestAdapter(
        site=cluster.name,
        base_url=base_url or cluster.rest_url,
        api_version=api_version,
        token_source=MintingTokenSource(cluster.jwt_key, lifespan=600),
        service_user=SERVICE_USER,
        files_factory=local_files,
        timeout=10.0,
        client=client,
    )
    if base_url is None:
        assert adapter.dialect.version  # probe now (auto), outside the counted calls
    seen.clear()
    kind = "slurmrest" if api_version == "auto" else f"slurmrest@{api_version}"
    return AdapterUnderTest(kind, adapter, cluster, requests=seen, cleanups=[client.close])


@functools.cache
def ssh_known_hosts(host: str = SSH_HOST, port: int = SSH_PORT) -> str:
    """A known_hosts file for a dev sshd, made once per test run with ssh-keyscan."""
    out = subprocess.run(
        ["ssh-keyscan", "-p", str(port), host], capture_output=True, text=True, timeout=30
    )
    path = Path(tempfile.mkdtemp(prefix="hpcgw-known-hosts-"), "known_hosts")
    path.write_text(out.stdout)
    return str(path)


def make_ssh_pool(target: str = f"{SSH_HOST}:{HPCGW.ssh_port}", **kw: object) -> SshPool:
    """An SshPool on a dev sshd (``host:port``), with certificates from the dev CA."""
    host, _, port = target.rpartition(":")
    kw.setdefault("connect_timeout", 10.0)
    kw.setdefault("command_timeout", 60.0)
    return SshPool(
        host,
        int(port),
        CertificateSigner(SSH_CA_KEY, 5),
        ssh_known_hosts(host, int(port)),
        **kw,  # type: ignore[arg-type]
    )


def make_ssh(cluster: DevCluster = HPCGW, target: str | None = None) -> AdapterUnderTest:
    """SshAdapter on a dev cluster's login-node sshd, counting remote commands."""
    seen: list[str] = []
    pool = make_ssh_pool(
        target or f"{SSH_HOST}:{cluster.ssh_port}",
        on_command=lambda login, verb: seen.append(f"{login}: {verb}"),
    )
    if os.geteuid() == 0:
        os.makedirs(SSH_WORK_ROOT, exist_ok=True)
        os.chmod(SSH_WORK_ROOT, 0o1777)  # users create their own job directories over SFTP
    adapter = SshAdapter(cluster.name, pool, SSH_SERVICE_USER, SSH_WORK_ROOT)
    return AdapterUnderTest("ssh", adapter, cluster, requests=seen, work_root=SSH_WORK_ROOT)


def make_pyslurm(cluster: DevCluster = HPCGW) -> AdapterUnderTest:
    """PyslurmAdapter in this process (libslurm uses the host's slurm.conf), counting RPCs."""
    seen: list[str] = []
    try:
        adapter = PyslurmAdapter(cluster.name, local_files, on_call=seen.append)
    except PyslurmUnavailable as exc:
        if os.environ.get("HPCGW_REQUIRE_PYSLURM") == "1":
            raise
        pytest.skip(f"pyslurm not installed: {exc}")
    return AdapterUnderTest("pyslurm", adapter, cluster, requests=seen)


#: (pair id, factory) for every adapter x cluster pair the contract suite covers.
PAIRS: dict[str, Callable[[], AdapterUnderTest]] = {
    "slurmrest-hpcgw": lambda: make_slurmrest(HPCGW),
    "slurmrest-mesocentre": lambda: make_slurmrest(CLUSTERS["mesocentre"]),
    "slurmrest@v0.0.41-mesocentre": lambda: make_slurmrest(CLUSTERS["mesocentre"], "v0.0.41"),
    "slurmrest@v0.0.40-mesocentre": lambda: make_slurmrest(CLUSTERS["mesocentre"], "v0.0.40"),
    "ssh-hpcgw": lambda: make_ssh(HPCGW),
    "ssh-mesocentre": lambda: make_ssh(CLUSTERS["mesocentre"]),
    "pyslurm-hpcgw": lambda: make_pyslurm(HPCGW),
}
#: Factories pointed at a site where nothing answers.
UNREACHABLE: dict[str, Callable[[], AdapterUnderTest]] = {
    "slurmrest": lambda: make_slurmrest(HPCGW, "auto", UNREACHABLE_URL),
    "ssh": lambda: make_ssh(HPCGW, "127.0.0.1:1"),
}


@pytest.fixture(params=list(PAIRS))
def adapter_under_test(request: pytest.FixtureRequest, cluster: str) -> Iterator[AdapterUnderTest]:
    """Each adapter kind on each dev cluster it supports."""
    require_root("the contract suite creates workspaces owned by alice")
    require_cluster(CLUSTERS[request.param.rsplit("-", 1)[1]])
    under_test = PAIRS[request.param]()
    yield under_test
    under_test.close()


@pytest.fixture
def workdir(adapter_under_test: AdapterUnderTest) -> Iterator[str]:
    """A fresh workspace owned by alice; removed afterwards."""
    path = f"{adapter_under_test.work_root}/contract-{uuid.uuid4().hex[:12]}"
    files = adapter_under_test.adapter.files(ALICE)
    files.mkdir(path)
    yield path
    files.remove_tree(path)


@pytest.fixture
def cancel_later(adapter_under_test: AdapterUnderTest) -> Iterator[list[str]]:
    """Job ids to scancel at teardown, so a failing test leaves nothing running."""
    ids: list[str] = []
    yield ids
    adapter_under_test.cluster.scancel(*ids)


@pytest.fixture(params=list(UNREACHABLE))
def unreachable_adapter(request: pytest.FixtureRequest) -> Iterator[AdapterUnderTest]:
    """Each adapter kind, pointed at a site where nothing answers."""
    under_test = UNREACHABLE[request.param]()
    yield under_test
    under_test.close()
