"""The submission path's caches: run history for quotes, users' accounts; and how few
database statements a submission costs with them (no Slurm needed)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.accounting import tables
from gateway.accounting.cache import TtlCache
from gateway.identity.auth import Principal
from gateway.identity.identity_map import IdentityStatus, IdentityStore
from gateway.services import Services
from processes.registry import ProcessRegistry
from tests.unit.accounting_fixtures import make_job, usage

pytestmark = pytest.mark.unit

ALICE = Principal(sub="sub-alice", username="alice", hpc_login="alice", roles=frozenset())


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_ttl_cache_reuses_until_expiry_and_forgets_on_demand() -> None:
    ticks, loads = Ticks(), []
    cache: TtlCache[str, int] = TtlCache(10, ticks)

    def load(value: int) -> Any:
        return lambda: loads.append(value) or value

    assert cache.get("a", load(1)) == 1
    ticks.now += 9
    assert cache.get("a", load(2)) == 1
    ticks.now += 2
    assert cache.get("a", load(3)) == 3
    assert cache.get("b", load(4)) == 4
    cache.forget(lambda key: key == "a")
    assert (cache.get("a", load(5)), cache.get("b", load(6))) == (5, 4)
    assert loads == [1, 3, 4, 5]
    uncached: TtlCache[str, int] = TtlCache(0, ticks)
    assert [uncached.get("a", load(7)), uncached.get("a", load(8))] == [7, 8]


def test_a_failed_load_is_not_cached() -> None:
    cache: TtlCache[str, int] = TtlCache(10, Ticks())

    def boom() -> int:
        raise RuntimeError("database gone")

    with pytest.raises(RuntimeError):
        cache.get("a", boom)
    assert cache.get("a", lambda: 1) == 1


def _usage_row(services: Services, elapsed: int) -> None:
    """A usage row as another process's worker would write it (no cache refresh here)."""
    job = make_job(services.store, "alice")
    with services.engine.begin() as conn:
        conn.execute(
            tables.usage.insert().values(
                job_id=job.id, site="dev", scheduler_job_id="1", process_id="echo",
                owner_sub="sub-alice", username="alice", hpc_login="alice", project="gep",
                state="COMPLETED", alloc_cpus=1, elapsed_seconds=elapsed, cpu_seconds=elapsed,
                core_hours=elapsed / 3600, end_time=datetime.now(UTC), cost=0.0,
                currency="EUR", recorded_at=datetime.now(UTC), quoted_core_hours=0.1,
            )
        )  # fmt: skip


def test_quotes_reuse_the_history_until_this_process_records_usage(services: Services) -> None:
    accounting = services.accounting
    assert accounting is not None
    echo = ProcessRegistry.builtin().get("echo")
    estimator = accounting.estimator
    assert estimator.quote(echo, {}, "dev", "gep").basis["method"] == "walltime"
    for elapsed in (10, 20, 30):
        _usage_row(services, elapsed)
    # written elsewhere: this process keeps quoting from what it read (for a minute at most)
    assert estimator.quote(echo, {}, "dev", "gep").basis["method"] == "walltime"
    recorder = accounting.recorder("w1")
    job = make_job(services.store, "alice", slurm_id="7")
    assert recorder.record(job, usage("7", user="alice", cpus=1, elapsed=40))
    quote = estimator.quote(echo, {}, "dev", "gep")
    assert quote.basis["method"] == "history" and quote.basis["runs"] == 4
    assert quote.estimated_seconds == 25


def test_project_comes_from_the_synced_accounts(services: Services) -> None:
    accounting = services.accounting
    assert accounting is not None
    IdentityStore(services.engine).save(
        "sub-alice", "alice", "alice", IdentityStatus.ACTIVE, ["proj-a"]
    )
    assert accounting.project_for(ALICE) == "proj-a"
    stranger = Principal(sub=str(uuid.uuid4()), username="x", hpc_login="x")
    assert accounting.project_for(stranger) == accounting.settings.default_project


def test_a_submission_costs_two_statements_once_warm(services: Services) -> None:
    """Quote history and accounts are cached: what is left is the budget check and the insert."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()[:4]))

    body = {"inputs": {"string_input": "x"}}
    services.jobs.submit(ALICE, "echo", body)  # warms the caches
    sa.event.listen(services.engine, "before_cursor_execute", count)
    try:
        job = services.jobs.submit(ALICE, "echo", body)
    finally:
        sa.event.remove(services.engine, "before_cursor_execute", count)
    assert job.quote is not None and job.quote.project == "gep"
    assert len(seen) == 2, seen
    assert seen[0].startswith("SELECT accounting_budgets.")
    assert seen[1].startswith("INSERT INTO jobs")
