"""Adapters under contract test: one factory per transport, one parametrised fixture.

``tests/integration/test_adapter_contract.py`` runs the same suite against
every kind in :data:`ADAPTER_KINDS`. To add a transport (SSH, pyslurm), write
a ``make_<kind>`` factory returning an :class:`AdapterUnderTest` and add the
kind to the list. ``wire_calls`` counts scheduler round trips (HTTP requests
for slurmrestd; commands for SSH) so the suite can check "one call for N jobs".
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from hpc_adapters.base import HpcIdentity, SchedulerAdapter, WorkspaceFiles
from hpc_adapters.localfs import LocalWorkspace
from hpc_adapters.slurmrest import MintingTokenSource, SlurmRestAdapter
from tests.conftest import JWT_KEY, SLURMRESTD, WORK_ROOT

API_VERSION = os.environ.get("SLURMRESTD_API_VERSION", "v0.0.38")
SERVICE_USER = os.environ.get("HPCGW_SERVICE_USER", "hpcgw")
#: An address where nothing listens, for the "site unreachable" case.
UNREACHABLE_URL = "http://127.0.0.1:1"


@dataclass
class AdapterUnderTest:
    """An adapter plus what the contract suite needs to observe it."""

    kind: str
    adapter: SchedulerAdapter
    requests: list[str] = field(default_factory=list)
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


FACTORIES: dict[str, Callable[[str], AdapterUnderTest]] = {"slurmrest": make_slurmrest}
ADAPTER_KINDS = list(FACTORIES)
#: Where each kind's factory points for an unreachable site.
UNREACHABLE: dict[str, str] = {"slurmrest": UNREACHABLE_URL}


@pytest.fixture(params=ADAPTER_KINDS)
def adapter_under_test(request: pytest.FixtureRequest, cluster: str) -> Iterator[AdapterUnderTest]:
    """Each adapter kind, connected to the running dev cluster."""
    if os.geteuid() != 0:
        pytest.skip("the contract suite creates workspaces owned by alice: run it as root")
    under_test = FACTORIES[request.param](cluster)
    yield under_test
    under_test.close()


@pytest.fixture(params=ADAPTER_KINDS)
def unreachable_adapter(request: pytest.FixtureRequest) -> Iterator[AdapterUnderTest]:
    """Each adapter kind, pointed at a site where nothing answers."""
    under_test = FACTORIES[request.param](UNREACHABLE[request.param])
    yield under_test
    under_test.close()
