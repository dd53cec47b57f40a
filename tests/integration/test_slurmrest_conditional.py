"""Conditional ``GET /jobs`` (``update_time``) against the REAL slurmrestd of both dev clusters.

When no job changed since ``update_time``, slurmrestd 22.05 (v0.0.38) answers
HTTP 304 with an empty body and 24.11 (v0.0.42) answers HTTP 200 with no jobs
and a "No job changes since" warning; either way the adapter must reuse its
previous list, and must see any change made after it. The clusters are
shared, so a no-change answer is waited for (other people's jobs changing
resets it), never assumed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from hpc_adapters.base import HpcIdentity, JobSpec, SchedulerState
from hpc_adapters.slurmrest import MintingTokenSource, SlurmRestAdapter
from tests.clusters import CLUSTERS
from tests.conftest import WORK_ROOT, require_root
from tests.integration.adapters import SERVICE_USER, local_files, require_cluster
from tests.polling import eventually

pytestmark = pytest.mark.slurm

ALICE = HpcIdentity("alice")


class Wire:
    """Every ``GET /jobs`` of the adapter: (query string, "no change" answer?)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []

    def response(self, response: httpx.Response) -> None:
        if response.request.url.path.rstrip("/").endswith("/jobs"):
            response.read()
            self.seen.append((response.request.url.query.decode(), _unchanged(response)))


def _unchanged(response: httpx.Response) -> bool:
    """What each release says for "no job changed": 304, or 200 + warning, no jobs."""
    if response.status_code == 304:
        return True
    body = response.json()
    warnings = [w.get("description", "") for w in body.get("warnings", [])]
    return not body.get("jobs") and any(w.startswith("No job changes") for w in warnings)


@pytest.fixture(params=list(CLUSTERS))
def wired(request: pytest.FixtureRequest, cluster: str) -> Iterator[tuple[SlurmRestAdapter, Wire]]:
    require_root("creates workspaces owned by alice")
    dev = CLUSTERS[request.param]
    require_cluster(dev)
    wire = Wire()
    client = httpx.Client(timeout=30.0, event_hooks={"response": [wire.response]})
    adapter = SlurmRestAdapter(
        site=dev.name,
        base_url=dev.rest_url,
        api_version=dev.api_version,
        token_source=MintingTokenSource(dev.jwt_key, lifespan=600),
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

        def started() -> bool:
            return adapter.statuses([job_id])[job_id].state is SchedulerState.RUNNING

        eventually(started, 60, "the job to start", every=0.5)

        def no_change_answered() -> bool:
            before = len(wire.seen)
            status = adapter.statuses([job_id])[job_id]
            assert status.state is SchedulerState.RUNNING and status.name == spec.name
            return wire.seen[before:] == [(wire.seen[-1][0], True)]

        # other jobs on the cluster may delay slurmctld's "no change"
        eventually(
            no_change_answered,
            120,
            lambda: f"slurmrestd to say no change: {wire.seen[-3:]}",
            every=0.5,
        )
        query, _ = wire.seen[-1]
        assert query.startswith("update_time=")
        assert int(query.split("=", 1)[1]) <= time.time() - 1
        assert [s.job_id for s in adapter.find_by_name(spec.name)] == [job_id]
    finally:
        CLUSTERS[adapter.site].scancel(job_id)

    # The cancel came after the cached list: it must be seen, not the cached RUNNING forever.
    def ended() -> SchedulerState | None:
        state = adapter.statuses([job_id])[job_id].state
        return None if state.active else state

    state = eventually(ended, 60, lambda: f"the cancel to be seen: {wire.seen[-3:]}", every=0.5)
    assert state is SchedulerState.CANCELLED
