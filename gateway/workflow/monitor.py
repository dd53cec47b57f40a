"""Monitor: follow every scheduled job of a site with ONE scheduler call per cycle.

One worker at a time monitors a site (a named lease in the store). Ended
Slurm jobs move to ``publishing``; the finaliser takes them from there.
Progress files of running jobs are read in the same cycle. A job the scheduler
has lost entirely (neither live nor in accounting) fails after a grace period.
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from gateway.errors import BadRequest
from gateway.jobs.extra import missing_since, missing_since_key
from gateway.jobs.records import UNSET, Job, JobUpdate, Unset
from gateway.jobs.states import JobState, state_for_scheduler
from gateway.jobs.store import JobStore
from gateway.logs import job_context
from gateway.sites import Sites
from gateway.strict_json import decode_json
from gateway.workflow.retry import fail_job
from hpc_adapters.base import HpcIdentity, JobStatus
from hpc_adapters.errors import HpcError, TransientHpcError
from processes.runtime import PROGRESS_FILE

log = logging.getLogger(__name__)

#: Called with the jobs that started running or reported new progress this cycle.
ProgressHook = Callable[[list[Job]], None]

LOST_GRACE = timedelta(minutes=5)
_MAX_PROGRESS_BYTES = 4096


class Monitor:
    """Polls each site once per cycle and advances job states."""

    def __init__(
        self,
        *,
        store: JobStore,
        sites: Sites,
        worker_id: str,
        lease_seconds: float,
        hooks: list[ProgressHook] | None = None,
    ) -> None:
        self.store = store
        self.sites = sites
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.hooks = hooks or []
        #: Wall time of the last :meth:`run_once` (the worker spaces polls by it).
        self.last_cycle_seconds = 0.0

    def run_once(self) -> int:
        """Check every site with scheduled jobs; returns how many jobs were looked at."""
        started = time.monotonic()
        seen = 0
        try:
            for site in self.store.sites_with_scheduled_jobs():
                if not self.store.acquire_lease(
                    f"monitor:{site}", self.worker_id, self.lease_seconds
                ):
                    continue
                try:
                    seen += self.check_site(site)
                except TransientHpcError as exc:
                    log.warning("monitor: site %s unreachable, will retry: %s", site, exc.detail)
        finally:
            self.last_cycle_seconds = time.monotonic() - started
        return seen

    def check_site(self, site: str) -> int:
        jobs = [j for j in self.store.scheduled(site) if j.scheduler_job_id]
        if not jobs:
            return 0
        adapter = self.sites.adapter(site)
        statuses = adapter.statuses([j.scheduler_job_id for j in jobs if j.scheduler_job_id])
        running: list[Job] = []
        for job in jobs:
            status = statuses.get(job.scheduler_job_id or "")
            with job_context(job.id, job.owner.username):
                if status is None:
                    self._missing(job)
                elif self._advance(job, status) is JobState.RUNNING:
                    running.append(job)
        changed = self._read_progress(site, running)
        moved = [j for j in running if j.state is JobState.QUEUED or j.id in changed]
        if moved:
            for hook in self.hooks:
                hook(moved)
        return len(jobs)

    def _advance(self, job: Job, status: JobStatus) -> JobState:
        target = state_for_scheduler(status.state)
        started: datetime | Unset = UNSET
        if job.started is None and status.start_time is not None:
            # Slurm times have one-second resolution: never report a start before creation
            started = max(status.start_time, job.created)
        seen = JobUpdate(
            scheduler_state=status.raw_state, exit_code=status.exit_code, started=started
        )
        if target is JobState.PUBLISHING:
            update = replace(seen, message="Collecting outputs", next_attempt_at=datetime.now(UTC))
            self.store.transition(job.id, JobState.PUBLISHING, update)
        elif target is JobState.RUNNING and job.state is JobState.QUEUED:
            update = replace(seen, message=f"Running as Slurm job {job.scheduler_job_id}")
            self.store.transition(job.id, JobState.RUNNING, update)
        elif status.raw_state != job.scheduler_state:
            self.store.update(job.id, seen, only_if_state=job.state)
        return target

    def _missing(self, job: Job) -> None:
        since = missing_since(job.extra)
        now = datetime.now(UTC)
        if since is None:
            self.store.update(job.id, JobUpdate(extra_keys=missing_since_key(now)))
            return
        if now - since > LOST_GRACE:
            fail_job(
                self.store,
                job,
                f"Slurm job {job.scheduler_job_id} is unknown to the scheduler and its accounting",
            )

    def _read_progress(self, site: str, jobs: list[Job]) -> set[str]:
        changes: dict[str, tuple[int | None, str | None]] = {}
        adapter = self.sites.adapter(site)
        for job in jobs:
            if not job.workspace:
                continue
            try:
                raw = adapter.files(HpcIdentity(job.owner.hpc_login)).read_bytes(
                    posixpath.join(job.workspace, PROGRESS_FILE), _MAX_PROGRESS_BYTES
                )
            except HpcError as exc:
                log.debug("job %s: progress unreadable: %s", job.id, exc.detail)
                continue
            parsed = parse_progress(raw) if raw else None
            if parsed and (parsed[0] != job.progress or parsed[1] != job.message):
                changes[job.id] = parsed
        self.store.update_many_progress(changes)
        return set(changes)


def parse_progress(raw: bytes) -> tuple[int | None, str | None] | None:
    """``{"percent": 0-100, "message": str}`` -> (percent, message); None if unusable."""
    try:
        data = decode_json(raw, what="progress.json")  # the job's own code wrote it
    except BadRequest:
        return None
    if not isinstance(data, dict):
        return None
    percent = data.get("percent")
    message = data.get("message")
    pct = max(0, min(100, int(percent))) if isinstance(percent, int | float) else None
    msg = message[:500] if isinstance(message, str) and message else None
    return pct, msg
