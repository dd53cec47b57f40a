"""Fixtures for accounting unit tests: a migrated SQLite job store, jobs, a fake adapter."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from gateway import db
from gateway.jobs.records import Job, JobUpdate, NewJob, Owner, Quote
from gateway.jobs.states import JobState
from gateway.jobs.store import JobStore
from hpc_adapters.base import HpcIdentity, JobSpec, JobStatus, SchedulerState, Usage
from hpc_adapters.errors import SchedulerBusyError

T0 = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)


def migrated_engine(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path}/acc.db"
    db.upgrade(url)
    return db.make_engine(url)


def quote_of(process: str, partial: dict[str, Any]) -> Quote:
    """A whole Quote from the few fields a test cares about.

    Unnamed numbers are 0 (``max_core_hours``: the ``core_hours``), ``project``
    and ``currency`` empty, so the gateway's defaults apply as for a job without them.
    """
    base: dict[str, Any] = {
        "process_id": process,
        "process_version": "1.0.0",
        "site": "dev",
        "partition": "debug",
        "project": "",
        "cores": 1,
        "memory_mb": 100,
        "walltime_limit_seconds": 60,
        "estimated_seconds": 60,
        "core_hours": 0.0,
        "max_core_hours": partial.get("core_hours", 0.0),
        "billing_units": 0.0,
        "price_per_core_hour": 0.0,
        "cost": 0.0,
        "max_cost": 0.0,
        "currency": "",
    }
    return Quote.from_dict({**base, **partial})


def make_job(
    store: JobStore,
    login: str = "alice",
    *,
    process: str = "echo",
    state: JobState = JobState.SUCCESSFUL,
    slurm_id: str | None = "100",
    quote: dict[str, Any] | None = None,
    site: str = "dev",
) -> Job:
    job_id = str(uuid.uuid4())
    store.create(
        NewJob(
            id=job_id,
            process_id=process,
            process_version="1.0.0",
            owner=Owner(sub=f"sub-{login}", username=login, hpc_login=login),
            site=site,
            inputs={},
            quote=quote_of(process, quote) if quote is not None else None,
        )
    )
    if slurm_id is not None:
        store.update(job_id, JobUpdate(scheduler_job_id=slurm_id))
    if state is not JobState.ACCEPTED:
        store.transition(job_id, state)
    return store.get(job_id)


def usage(
    slurm_id: str,
    *,
    user: str = "alice",
    cpus: int = 2,
    elapsed: int = 30,
    state: SchedulerState = SchedulerState.COMPLETED,
    end: datetime | None = T0,
    start: datetime | None = None,
    account: str | None = "gep",
    billing: int | None = None,
) -> Usage:
    begin = start if start is not None else (end - timedelta(seconds=elapsed) if end else None)
    return Usage(
        job_id=slurm_id,
        user=user,
        account=account,
        partition="debug",
        state=state,
        exit_code=0,
        alloc_cpus=cpus,
        elapsed_seconds=elapsed,
        cpu_seconds=cpus * elapsed,
        billing=billing if billing is not None else cpus,
        submit_time=begin - timedelta(seconds=4) if begin else None,
        start_time=begin,
        end_time=end,
    )


class FakeAdapter:
    """Only ``usages`` matters here; every call is recorded, errors can be injected."""

    def __init__(self, site: str = "dev") -> None:
        self.site = site
        self.records: dict[str, Usage] = {}
        self.calls: list[list[str]] = []
        self.fail_next = 0

    def usages(self, job_ids: Iterable[str]) -> dict[str, Usage]:
        ids = list(job_ids)
        self.calls.append(ids)
        if self.fail_next:
            self.fail_next -= 1
            raise SchedulerBusyError("slurmdbd is not answering")
        return {i: self.records[i] for i in ids if i in self.records}

    def submit(self, spec: JobSpec, identity: HpcIdentity) -> str:
        raise NotImplementedError

    def statuses(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        return {}

    def find_by_name(self, name: str) -> list[JobStatus]:
        return []

    def find_by_names(self, names: Sequence[str], since: datetime) -> dict[str, list[JobStatus]]:
        return {}

    def cancel(self, job_id: str, identity: HpcIdentity) -> None:
        raise NotImplementedError

    def files(self, identity: HpcIdentity) -> Any:
        raise NotImplementedError

    def check(self) -> dict[str, str]:
        return {}

    def close(self) -> None:
        pass
