"""Usage records: a finished job's core-hours, read back from Slurm accounting.

How a job gets its record, surviving restarts at every step:

1. When a job reaches a final state with a Slurm job behind it, the
   finaliser hook :meth:`UsageRecorder.on_final` queues it in
   ``accounting_usage_pending`` (a database row, not memory). Jobs that reach
   a final state elsewhere (dismissed by the user) are found by a periodic
   sweep of recently finished jobs without a record.
2. Each worker cycle, :meth:`UsageRecorder.run_once` (one worker at a time,
   under a named lease) reads the due jobs' accounting with ONE
   ``adapter.usages(ids)`` call per site.
3. A record is written only when Slurm accounting is *final*: the job is no
   longer active there, has an end time, and (if it ran) its allocated CPUs
   are known. slurmdbd lags the job's end by up to a few seconds, so a record
   that is not final yet is retried later with backoff, never recorded with
   wrong numbers.

``cpu_seconds`` is Slurm's ``CPUTimeRAW`` (allocated CPUs x elapsed);
``core_hours = cpu_seconds / 3600``. A job whose steps ran as Slurm jobs of
their own (a CWL Workflow run with toil) adds theirs (:mod:`gateway.accounting.steps`):
the record is written once every step is final too, and its cost is the sum of
each job's.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from gateway.accounting import tables
from gateway.accounting.config import AccountingSettings
from gateway.accounting.quotes import Pricing
from gateway.accounting.steps import StepNamer, StepsNotFinal, combined, step_usages
from gateway.backoff import backoff_delay
from gateway.jobs.records import Job
from gateway.jobs.states import FINAL_STATES
from gateway.jobs.store import JobNotFound, JobStore
from gateway.jobs.tables import jobs as jobs_table
from gateway.logs import job_context
from gateway.sites import Sites
from hpc_adapters.base import Usage
from hpc_adapters.errors import HpcError, TransientHpcError

log = logging.getLogger(__name__)

LEASE_NAME = "accounting:usage"
BATCH = 200


def utcnow() -> datetime:
    return datetime.now(UTC)


def not_final_reason(usage: Usage) -> str | None:
    """Why a Slurm accounting record cannot be recorded yet (None: it is final)."""
    if usage.state.active:
        return f"Slurm accounting still shows the job {usage.state.value}"
    if usage.end_time is None:
        return "Slurm accounting has no end time for the job yet"
    if usage.elapsed_seconds > 0 and usage.alloc_cpus <= 0:
        return "Slurm accounting has no allocated CPUs for the job yet"
    return None


class UsageRecorder:
    """Turns finished jobs into usage rows from Slurm accounting (see module docs)."""

    def __init__(
        self,
        engine: Engine,
        store: JobStore,
        sites: Sites,
        pricing: Pricing,
        settings: AccountingSettings,
        worker_id: str,
        clock: Callable[[], datetime] = utcnow,
        on_recorded: Callable[[Job], None] | None = None,
        step_name: StepNamer | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.sites = sites
        self.pricing = pricing
        self.settings = settings
        self.worker_id = worker_id
        self.clock = clock
        #: Called after a usage row of ``job`` was written (e.g. to refresh cached quotes).
        self.on_recorded = on_recorded
        #: The Slurm job name of a job's step jobs (toil), or None: it has none.
        self.step_name = step_name
        self._next_sweep = 0.0

    # -- queueing -------------------------------------------------------------

    def on_final(self, jobs: list[Job]) -> None:
        """Finaliser hook: queue the usage reads of jobs that ended (idempotent; one
        transaction for a finaliser run's jobs)."""
        ended = [job for job in jobs if job.final and job.scheduler_job_id]
        if not ended:
            return
        try:
            self.enqueue(ended)
        except SQLAlchemyError as exc:  # the periodic sweep queues them later
            log.warning("usage reads of %d jobs not queued yet: %s", len(ended), exc)

    def enqueue(self, jobs: list[Job]) -> int:
        """Queue usage reads for jobs that have neither a record nor a queued read.

        One conditional INSERT per job; with several jobs each runs in a savepoint,
        so a job another worker queued meanwhile does not undo the others.
        """
        now = self.clock()
        first = now + timedelta(seconds=self.settings.usage_delay_seconds)
        wanted = [job for job in jobs if job.scheduler_job_id]
        added = 0
        try:
            with self.engine.begin() as conn:
                if len(wanted) == 1:  # the finaliser's case: no savepoint needed
                    return int(self._insert_if_new(conn, wanted[0], now, first))
                for job in wanted:
                    try:
                        with conn.begin_nested():
                            added += self._insert_if_new(conn, job, now, first)
                    except sa.exc.IntegrityError:
                        continue  # another worker queued it meanwhile
        except sa.exc.IntegrityError:
            return 0  # the one job was queued by another worker meanwhile
        return added

    @staticmethod
    def _insert_if_new(conn: sa.Connection, job: Job, now: datetime, first: datetime) -> bool:
        """``INSERT ... SELECT ... WHERE NOT EXISTS`` (queued or recorded): one statement."""
        p, u = tables.usage_pending, tables.usage
        row = sa.select(
            sa.literal(job.id, p.c.job_id.type),
            sa.literal(job.site, p.c.site.type),
            sa.literal(job.scheduler_job_id, p.c.scheduler_job_id.type),
            sa.literal(0, p.c.attempts.type),
            sa.literal(now, p.c.first_seen.type),
            sa.literal(first, p.c.next_attempt_at.type),
        ).where(
            ~sa.exists().where(p.c.job_id == job.id),
            ~sa.exists().where(u.c.job_id == job.id),
        )
        columns = ["job_id", "site", "scheduler_job_id", "attempts", "first_seen"]
        stmt = p.insert().from_select([*columns, "next_attempt_at"], row).returning(p.c.job_id)
        # RETURNING, not rowcount: psycopg reports -1 for INSERT ... SELECT
        return conn.execute(stmt).first() is not None

    def sweep(self) -> int:
        """Queue recently finished jobs that never got a record (e.g. dismissed ones)."""
        j, p, u = jobs_table, tables.usage_pending, tables.usage
        since = self.clock() - timedelta(hours=self.settings.usage_sweep_lookback_hours)
        query = (
            sa.select(j.c.id)
            .where(
                j.c.state.in_([s.value for s in FINAL_STATES]),
                j.c.scheduler_job_id.is_not(None),
                j.c.finished >= since,
                ~sa.exists().where(u.c.job_id == j.c.id),
                ~sa.exists().where(p.c.job_id == j.c.id),
            )
            .limit(BATCH)
        )
        with self.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(query).all()]
        return self.enqueue([self.store.get(i) for i in ids]) if ids else 0

    # -- reading accounting ---------------------------------------------------

    def run_once(self) -> int:
        """One cycle: sweep now and then, then settle every due pending read.

        A database error is logged, not raised: the other worker stages of the
        cycle go on, and everything owed is still in the database next cycle.
        """
        try:
            return self._cycle()
        except SQLAlchemyError as exc:
            log.warning("usage recording skipped this cycle: %s", exc)
            return 0

    def _cycle(self) -> int:
        if not self.store.acquire_lease(
            LEASE_NAME, self.worker_id, self.settings.usage_lease_seconds
        ):
            return 0
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self.settings.usage_sweep_seconds
            self.sweep()
        p = tables.usage_pending
        query = (
            sa.select(p)
            .where(p.c.next_attempt_at <= self.clock())
            .order_by(p.c.next_attempt_at)
            .limit(BATCH)
        )
        with self.engine.connect() as conn:
            due = [dict(r) for r in conn.execute(query).mappings().all()]
        by_site: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in due:
            by_site[row["site"]].append(row)
        for site, rows in by_site.items():
            self._settle_site(site, rows)
        return len(due)

    def settle_now(self) -> int:
        """Settle every pending read regardless of its backoff (CLI, tests)."""
        p = tables.usage_pending
        with self.engine.begin() as conn:
            conn.execute(p.update().values(next_attempt_at=self.clock()))
        self._next_sweep = 0.0
        return self.run_once()

    def _settle_site(self, site: str, rows: list[dict[str, Any]]) -> None:
        ids = [r["scheduler_job_id"] for r in rows]
        try:
            found = self.sites.adapter(site).usages(ids)
        except TransientHpcError as exc:
            for row in rows:
                self._retry(row, f"site unreachable: {exc.detail}")
            return
        except (HpcError, LookupError) as exc:
            detail = exc.detail if isinstance(exc, HpcError) else f"unknown site {site!r}"
            for row in rows:
                self._retry(row, detail)
            return
        for row in rows:
            usage = found.get(row["scheduler_job_id"])
            if usage is None:
                self._retry(row, "Slurm accounting has no record of the job yet")
                continue
            reason = not_final_reason(usage)
            if reason is not None:
                self._retry(row, reason)
                continue
            try:
                job = self.store.get(row["job_id"])
            except JobNotFound:
                self._drop(row["job_id"])
                continue
            name = self.step_name(job) if self.step_name is not None else None
            try:
                steps = step_usages(self.sites.adapter(site), job, name, usage) if name else []
            except (HpcError, StepsNotFinal) as exc:
                self._retry(row, exc.detail if isinstance(exc, HpcError) else str(exc))
                continue
            with job_context(job.id, job.owner.username):
                self.record(job, usage, steps)

    def _retry(self, row: dict[str, Any], reason: str) -> None:
        waited = self.clock() - row["first_seen"]
        if waited > timedelta(hours=self.settings.usage_give_up_hours):
            log.error(
                "usage of job %s (Slurm %s) given up after %s: %s",
                row["job_id"],
                row["scheduler_job_id"],
                waited,
                reason,
            )
            self._drop(row["job_id"])
            return
        attempts = int(row["attempts"]) + 1
        delay = backoff_delay(
            attempts, self.settings.usage_retry_seconds, self.settings.usage_retry_max_seconds
        )
        level = logging.WARNING if delay >= self.settings.usage_retry_max_seconds else logging.INFO
        log.log(level, "usage of job %s deferred (%d): %s", row["job_id"], attempts, reason)
        p = tables.usage_pending
        with self.engine.begin() as conn:
            conn.execute(
                p.update()
                .where(p.c.job_id == row["job_id"])
                .values(
                    attempts=attempts,
                    next_attempt_at=self.clock() + timedelta(seconds=delay),
                    last_error=reason[:2000],
                )
            )

    def _drop(self, job_id: str) -> None:
        p = tables.usage_pending
        with self.engine.begin() as conn:
            conn.execute(p.delete().where(p.c.job_id == job_id))

    # -- writing --------------------------------------------------------------

    def project_of(self, job: Job, usage: Usage) -> str:
        quoted = job.quote.project if job.quote is not None else None
        return usage.account or job.project or quoted or self.settings.default_project

    def record(self, job: Job, usage: Usage, steps: Sequence[Usage] = ()) -> bool:
        """Write the usage row (the job's own plus its ``steps``) and drop the pending
        read, in one transaction."""
        cost = sum(self.pricing.actual_cost(u, job.site) for u in (usage, *steps))
        usage = combined(usage, steps)
        quote = job.quote
        queue_wait = None
        if usage.start_time is not None and usage.submit_time is not None:
            queue_wait = max(0.0, (usage.start_time - usage.submit_time).total_seconds())
        end = usage.end_time or job.finished or self.clock()
        values: dict[str, Any] = {
            "job_id": job.id,
            "site": job.site,
            "scheduler_job_id": usage.job_id,
            "process_id": job.process_id,
            "owner_sub": job.owner.sub,
            "username": job.owner.username,
            "hpc_login": usage.user or job.owner.hpc_login,
            "project": self.project_of(job, usage),
            "partition": usage.partition,
            "state": usage.state.value,
            "exit_code": usage.exit_code,
            "alloc_cpus": usage.alloc_cpus,
            "elapsed_seconds": usage.elapsed_seconds,
            "cpu_seconds": usage.cpu_seconds,
            "core_hours": usage.cpu_seconds / 3600.0,
            "total_cpu_seconds": usage.total_cpu_seconds,
            "billing": usage.billing,
            "max_rss_bytes": usage.max_rss_bytes,
            "queue_wait_seconds": queue_wait,
            "submit_time": usage.submit_time,
            "start_time": usage.start_time,
            "end_time": end,
            "quoted_core_hours": float(quote.core_hours) if quote is not None else None,
            "quoted_cost": float(quote.cost) if quote is not None else None,
            "cost": round(cost, 6),
            "currency": (quote.currency if quote is not None else "") or self.settings.currency,
            "recorded_at": self.clock(),
        }
        p, u = tables.usage_pending, tables.usage
        try:
            with self.engine.begin() as conn:
                conn.execute(u.insert().values(**values))
                conn.execute(p.delete().where(p.c.job_id == job.id))
        except sa.exc.IntegrityError:
            self._drop(job.id)  # recorded already (another worker): nothing to add
            return False
        log.info(
            "usage of job %s (Slurm %s%s): %d cpu-seconds = %.4f core-hours",
            job.id,
            usage.job_id,
            "".join(f" + {u.job_id}" for u in steps),
            usage.cpu_seconds,
            usage.cpu_seconds / 3600.0,
        )
        if self.on_recorded is not None:
            self.on_recorded(job)
        return True
