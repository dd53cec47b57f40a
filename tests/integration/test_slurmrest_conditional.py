"""Conditional ``GET /jobs`` (``update_time``) against the REAL slurmrestd of the dev cluster.

slurmrestd answers HTTP 304 with an empty body when no job changed since
``update_time``; the adapter must then reuse its previous list, and must see
any change made after it. The cluster is shared, so a no-change answer is
waited for (other people's jobs changing resets it), never assumed.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from hpc_adapters.base import HpcIdentity, JobSpec, SchedulerState
from hpc_adapters.slurmrest import MintingTokenSource, SlurmRestAdapter
from tests.conftest import JWT_KEY, WORK_ROOT
from tests.integration.adapters import API_VERSION, SERVICE_USER, local_files

pytestmark = pytest.mark.slurm

ALICE = HpcIdentity("alice")


class Wire:
    """Every exchange of the adapter: (query string, HTTP status)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def response(self, response: httpx.Response) -> None:
        if response.request.url.path.endswith("/jobs"):
            self.seen.append((response.request.url.query.decode(), response.status_code))


@pytest.fixture
def wired(cluster: str) -> Iterator[tuple[SlurmRestAdapter, Wire]]:
    if os.geteuid() != 0:
        pytest.skip("creates workspaces owned by alice: run as root")
    wire = Wire()
    client = httpx.Client(timeout=30.0, event_hooks={"response": [wire.response]})
    adapter = SlurmRestAdapter(
        site="dev",
        base_url=cluster,
        api_version=API_VERSION,
        token_source=MintingTokenSource(JWT_KEY, lifespan=600),
        service_user=SERVICE_USER,
        files_factory=local_files,
        client=client,
    )
    yield adapter, wire
    adapter.close()
    client.close()


@pytest.fixture
def workdir(wired: tuple[SlurmRestAdapter, Wire]) -> Iterator[str]:
    path = f"{WORK_ROOT}/conditional-{uuid.uuid4().hex[:12]}"
    files = wired[0].files(ALICE)
    files.mkdir(path)
    yield path
    files.remove_tree(path)


def test_unchanged_list_is_reused_and_a_later_change_is_seen(
    wired: tuple[SlurmRestAdapter, Wire], workdir: str
) -> None:
    adapter, wire = wired
    spec = JobSpec(name=f"cond-{uuid.uuid4().hex[:8]}", script="sleep 300", workdir=workdir)
    job_id = adapter.submit(spec, ALICE)
    try:
        deadline = time.monotonic() + 60
        while adapter.statuses([job_id])[job_id].state is not SchedulerState.RUNNING:
            assert time.monotonic() < deadline, "the job did not start"
            time.sleep(0.5)
        # Poll until slurmctld reports "no change" (other jobs on the cluster may delay it).
        deadline = time.monotonic() + 120
        while True:
            before = len(wire.seen)
            status = adapter.statuses([job_id])[job_id]
            assert status.state is SchedulerState.RUNNING and status.name == spec.name
            if wire.seen[before:] == [(wire.seen[-1][0], 304)]:
                break
            assert time.monotonic() < deadline, f"slurmrestd never answered 304: {wire.seen}"
            time.sleep(0.5)
        query, _ = wire.seen[-1]
        assert query.startswith("update_time=")
        assert int(query.split("=", 1)[1]) <= time.time() - 1
        assert [s.job_id for s in adapter.find_by_name(spec.name)] == [job_id]
    finally:
        subprocess.run(["scancel", job_id], capture_output=True)
    # The cancel came after the cached list: it must be seen, not the cached RUNNING forever.
    deadline = time.monotonic() + 60
    while (state := adapter.statuses([job_id])[job_id].state).active:
        assert time.monotonic() < deadline, f"the cancel was never seen: {wire.seen[-3:]}"
        time.sleep(0.5)
    assert state is SchedulerState.CANCELLED
