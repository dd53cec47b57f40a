"""Monitor: follow every scheduled job of a site with ONE scheduler call per cycle.

One worker at a time monitors a site (a named lease in the store). Ended
Slurm jobs move to ``publishing``; the finaliser takes them from there.
Progress files of running jobs are read in the same cycle. A job the scheduler
has lost entirely (neither live nor in accounting) fails after a grace period.

**End records.** A single job's batch script writes ``job-end`` in its
workspace once the runner has exited (:data:`~gateway.workflow.batch.END_RECORD`).
Between polls, :meth:`Monitor.run_ended` looks for new ones (one ``stat`` per
scheduled job, on sites whose workspaces the gateway mounts) and, when it finds
one, polls that site at once -- the same single scheduler call as a regular
cycle. The record is a hint, never evidence: only the scheduler's answer moves
a job, so a record written early, by the job's own code or anybody else,
changes no state; it costs a few extra polls (three ``hint_delay`` apart, then
spaced out exponentially up to the regular interval) while the scheduler
still calls the job active. A job that never writes one (killed, timed out, an array) is
finished by the regular polls, which remain the safety net.
"""

from __future__ import annotations

import logging
import os
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
from gateway.workflow.batch import END_RECORD
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
        end_records: bool = True,
        hint_delay: float = 0.05,
        max_hint_delay: float = 1.0,
    ) -> None:
        self.store = store
        self.sites = sites
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.hooks = hooks or []
        #: Watch end records between polls (:meth:`run_ended`).
        self.end_records = end_records
        self.hint_delay = hint_delay
        self.max_hint_delay = max_hint_delay
        #: Wall time of the last :meth:`run_once` (the worker spaces polls by it).
        self.last_cycle_seconds = 0.0
        #: Site -> when this worker last took its monitor lease (monotonic).
        self._held: dict[str, float] = {}
        #: Site -> earliest next poll prompted by an end record (monotonic): after
        #: a poll, at least as long as it took (the monitor keeps under half the
        #: worker's time when a burst of jobs ends), and at least ``hint_delay``.
        self._quiet_until: dict[str, float] = {}
        #: Job id -> (next look, looks so far): jobs with an end record the scheduler
        #: has not confirmed yet (racing the end, or not a genuine end).
        self._hints: dict[str, tuple[float, int]] = {}

    def run_once(self) -> int:
        """Check every site with scheduled jobs; returns how many jobs were looked at."""
        started = time.monotonic()
        seen = 0
        try:
            for site in self.store.sites_with_scheduled_jobs():
                if not self.store.acquire_lease(
                    f"monitor:{site}", self.worker_id, self.lease_seconds
                ):
                    self._held.pop(site, None)
                    continue
                self._held[site] = time.monotonic()
                seen += self._check(site)
        finally:
            self.last_cycle_seconds = time.monotonic() - started
        return seen

    def run_ended(self) -> int:
        """Between polls: poll at once each site (whose lease this worker holds) where
        a scheduled job has written its end record; returns how many jobs were looked at.

        No write and no scheduler call unless a record is there; the site's lease,
        once taken, is used while it has at least half its time left.
        """
        if not self.end_records:
            return 0
        seen = 0
        now = time.monotonic()
        for site in self.store.sites_with_scheduled_jobs():
            if now < self._quiet_until.get(site, 0.0) or not self._watchable(site):
                continue
            if self._ended(site, now) and self._holds(site, now):
                seen += self._check(site)
        return seen

    def _holds(self, site: str, now: float) -> bool:
        """This worker monitors ``site``: its lease, taken within half a lease, or now."""
        taken = self._held.get(site)
        if taken is not None and now - taken < self.lease_seconds / 2:
            return True
        if self.store.acquire_lease(f"monitor:{site}", self.worker_id, self.lease_seconds):
            self._held[site] = now
            return True
        self._held.pop(site, None)
        return False

    def _watchable(self, site: str) -> bool:
        """End records are looked for where workspaces are on a mounted filesystem (a
        ``stat`` each); over SSH each look would be a round trip: polling only."""
        try:
            return self.sites.settings(site).adapter != "ssh"
        except LookupError:
            return False

    def _ended(self, site: str, now: float) -> bool:
        """Whether a scheduled job of ``site`` has a new end record, or one due for
        another look. Hints of jobs no longer scheduled anywhere are forgotten."""
        due = False
        live: set[str] = set()
        for ref in self.store.scheduled_refs(site):
            live.add(ref.id)
            hint = self._hints.get(ref.id)
            if hint is not None:
                due = due or now >= hint[0]
            elif _has_end_record(ref.workspace):
                # Slurm ends the job ~0.1 s after its script wrote the record: first look then
                self._hints[ref.id] = (now + self.hint_delay, 0)
        for job_id in [j for j in self._hints if j not in live]:
            del self._hints[job_id]
        return due

    def _check(self, site: str) -> int:
        started = time.monotonic()
        try:
            return self.check_site(site)
        except TransientHpcError as exc:
            log.warning("monitor: site %s unreachable, will retry: %s", site, exc.detail)
            return 0
        finally:
            ended = time.monotonic()
            self._quiet_until[site] = ended + max(self.hint_delay, ended - started)

    def check_site(self, site: str) -> int:
        jobs = [j for j in self.store.scheduled(site) if j.scheduler_job_id]
        if not jobs:
            return 0
        adapter = self.sites.adapter(site)
        statuses = adapter.statuses([j.scheduler_job_id for j in jobs if j.scheduler_job_id])
        running: list[Job] = []
        active: list[Job] = []
        with self.store.batched():  # one commit for the whole cycle's moves
            for job in jobs:
                status = statuses.get(job.scheduler_job_id or "")
                with job_context(job.id, job.owner.username):
                    target = self._missing(job) if status is None else self._advance(job, status)
                if target is JobState.RUNNING:
                    running.append(job)
                if not target.final and target is not JobState.PUBLISHING:
                    active.append(job)
        if self.end_records and self._watchable(site):
            self._note_unconfirmed(active)
        changed = self._read_progress(site, running)
        moved = [j for j in running if j.state is JobState.QUEUED or j.id in changed]
        if moved:
            for hook in self.hooks:
                hook(moved)
        return len(jobs)

    def _note_unconfirmed(self, jobs: list[Job]) -> None:
        """Jobs still active by the scheduler that have an end record: look again, three
        times ``hint_delay`` later (a record racing the end is confirmed by then), then
        twice as late each time up to the regular interval (a record that is not an end
        costs a few polls, then nothing more than polling)."""
        now = time.monotonic()
        for job in jobs:
            if not job.workspace or not _has_end_record(job.workspace):
                continue
            looks = self._hints.get(job.id, (0.0, 0))[1] + 1
            delay = min(self.hint_delay * 2 ** max(0, looks - 3), self.max_hint_delay)
            self._hints[job.id] = (now + delay, looks)

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

    def _missing(self, job: Job) -> JobState:
        """The job's state after the scheduler did not know it (failed after a grace)."""
        since = missing_since(job.extra)
        now = datetime.now(UTC)
        if since is None:
            self.store.update(job.id, JobUpdate(extra_keys=missing_since_key(now)))
        elif now - since > LOST_GRACE:
            fail_job(
                self.store,
                job,
                f"Slurm job {job.scheduler_job_id} is unknown to the scheduler and its accounting",
            )
            return JobState.FAILED
        return job.state

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


def _has_end_record(workspace: str) -> bool:
    """Whether the job's batch script wrote its end record (one ``lstat``)."""
    return os.path.lexists(posixpath.join(workspace, END_RECORD))
