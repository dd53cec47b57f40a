"""What every phase shares: the run context, statistics, rows for the job store, clean-up."""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import slurm
from bench.gatewayproc import JWT_KEY, PG_ADMIN_URL, SLURMRESTD, Identity
from bench.sizes import Size

log = logging.getLogger("bench")


@dataclass
class Context:
    """One benchmark run."""

    size: Size
    out_dir: Path
    tmp: Path
    work_root: Path
    user: str
    identity: Identity
    #: The gateway's worker cycle (also the raw clients' poll interval is separate).
    poll_interval: float = 1.0
    #: Slurm identity of every status query (gateway monitor and raw clients alike). A
    #: read-only system account nobody else uses on the shared dev cluster, so sdiag's
    #: per-user counters isolate the benchmark's own monitoring RPCs.
    service_user: str = "daemon"
    #: How often a client polls a job (gateway GET /jobs/{id}, or slurmrestd GET /job/{id}).
    client_poll: float = 0.1
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    raw: slurm.RawSlurm = field(init=False)
    #: Gateway job stores created in this run (scanned for Slurm jobs at clean-up).
    gateway_db_urls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.raw = slurm.RawSlurm(SLURMRESTD, JWT_KEY)

    @property
    def job_prefix(self) -> str:
        """Name prefix of every raw job this run submits."""
        return f"bench-{self.run_id}"

    def phase_dir(self, name: str) -> Path:
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def workspace_dir(self, name: str) -> Path:
        """A folder under the bench workspace root, owned by the bench user."""
        from hpc_adapters.base import HpcIdentity
        from hpc_adapters.localfs import LocalWorkspace

        path = self.work_root / name
        LocalWorkspace(str(self.work_root), HpcIdentity(self.user)).mkdir(str(path))
        return path


# -- statistics ---------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    """Linear-interpolated percentile (``pct`` in 0..100)."""
    if not values:
        return float("nan")
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    rank = (len(data) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median": round(statistics.median(values), 4) if values else float("nan"),
        "p95": round(percentile(values, 95), 4),
        "min": round(min(values), 4) if values else float("nan"),
        "max": round(max(values), 4) if values else float("nan"),
        "mean": round(statistics.fmean(values), 4) if values else float("nan"),
    }


@contextmanager
def timed() -> Iterator[list[float]]:
    """``with timed() as t: ...`` then ``t[0]`` is the elapsed wall time in seconds."""
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


# -- job-store rows -----------------------------------------------------------------


def job_rows(
    n: int,
    *,
    start: int = 0,
    owner_sub: str,
    user: str,
    state: str = "successful",
    other_owner_share: float = 0.1,
    base_time: datetime | None = None,
) -> list[dict[str, Any]]:
    """``n`` realistic finished echo-job rows (every 10th owned by someone else)."""
    base = base_time or datetime(2026, 1, 1, tzinfo=UTC)
    every = int(1 / other_owner_share) if other_owner_share else 0
    rows = []
    for i in range(start, start + n):
        created = base + timedelta(seconds=i)
        mine = not (every and i % every == every - 1)
        rows.append(
            {
                "id": str(uuid.UUID(int=i + 1)),
                "process_id": "echo",
                "process_version": "1.0.0",
                "state": state,
                "owner_sub": owner_sub if mine else "someone-else",
                "owner_name": user if mine else "carol",
                "hpc_login": user if mine else "carol",
                "project": None,
                "site": "dev",
                "interface": "ogcapi",
                "inputs": {"string_input": f"hello {i}"},
                "outputs_request": None,
                "response": "document",
                "created": created,
                "updated": created + timedelta(seconds=3),
                "started": created + timedelta(seconds=1),
                "finished": created + timedelta(seconds=3),
                "progress": 100,
                "message": "Job completed successfully",
                "scheduler_job_id": str(100000 + i),
                "scheduler_state": "COMPLETED",
                "exit_code": 0,
                "workspace": f"/var/lib/hpcgw/work/{i}",
                "results": {"string_output": f"hello {i}"},
                "error": None,
                "attempts": 0,
                "next_attempt_at": None,
                "lease_owner": None,
                "lease_until": None,
                "cancel_pending": False,
                "cleanup_pending": False,
                "quote": None,
                "subscriber": None,
                "extra": {},
            }
        )
    return rows


def bulk_insert(engine: sa.Engine, rows: list[dict[str, Any]], chunk: int = 5000) -> None:
    from gateway.jobs.tables import jobs

    with engine.begin() as conn:
        for i in range(0, len(rows), chunk):
            conn.execute(jobs.insert(), rows[i : i + chunk])


# -- PostgreSQL scratch databases ----------------------------------------------------


def create_pg_database(admin_url: str, name: str) -> str:
    """Create database ``name`` (the dev role has CREATEDB); return its URL."""
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return str(sa.engine.make_url(admin_url).set(database=name).render_as_string(False))


def drop_pg_database(admin_url: str, name: str) -> None:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


@contextmanager
def scratch_postgres(prefix: str, admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A fresh PostgreSQL database ``<prefix>_<random>`` for one run, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = create_pg_database(admin_url, name)
    try:
        yield url
    finally:
        drop_pg_database(admin_url, name)


# -- clean-up -------------------------------------------------------------------------


def scheduler_ids_in(db_url: str) -> list[str]:
    """Slurm job ids recorded in a gateway job store."""
    from gateway.jobs.tables import jobs

    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(jobs.c.scheduler_job_id).where(jobs.c.scheduler_job_id.is_not(None))
            ).all()
        return [r[0] for r in rows]
    except sa.exc.SQLAlchemyError:
        return []
    finally:
        engine.dispose()


def cleanup(ctx: Context) -> dict[str, int]:
    """Cancel every job of this run still in the queue (raw by name, gateway by id)."""
    raw = slurm.cancel_named(ctx.job_prefix)
    live = {j for j, _, _ in slurm.squeue_jobs()}
    ours: list[str] = []
    for url in ctx.gateway_db_urls:
        ours += [j for j in scheduler_ids_in(url) if j in live]
    slurm.cancel_ids(ours)
    return {"raw_cancelled": raw, "gateway_cancelled": len(ours)}


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)
