"""Dispatcher: accepted job -> workspace, staged inputs, ``inputs.json`` -> Slurm job as the user.

Jobs are claimed with a lease (see :meth:`JobStore.claim`). ``staging`` is the
recorded intent to submit: it is written before anything is staged or
submitted. A worker that dies mid-dispatch (or a submission whose answer was
lost: a timeout, a reset connection) leaves the job in ``staging``; when it is
claimed again, the outcome of its submission is unknown, so before anything is
submitted the site is asked -- ONE :meth:`find_by_names` call per site for all
such jobs of the cycle, live jobs and accounting alike, by the job's Slurm
name ``hpcgw-<job id>`` -- and a Slurm job found is *adopted* (the job's
message says so); only a job the site answers it has never seen is submitted.
If the site cannot answer, the job waits (backoff) rather than risk a second
Slurm job. Transient errors back off and retry; permanent ones fail the job.

A lease is what makes a job one worker's: the leases of submissions under way
are renewed every third of a lease, and right before calling the scheduler the
pool renews the job's lease once more and gives up if it is gone (the *fence*):
a worker that stalled past its lease never submits a job another worker may
have looked up and submitted meanwhile. A killed worker renews nothing, so its
jobs are taken over once their leases lapse (``worker.lease_seconds``).

Submissions are I/O-bound (staging downloads, slurmrestd round trips), so they
run in a small fixed thread pool: one slow submission does not hold up the
others, nor -- with ``wait=False`` -- the worker's other stages. The pool does
the I/O only; the job's state changes (``staging`` before, ``queued``, retry or
failure after) are written by the thread that calls :meth:`Dispatcher.run_once`.
So one thread per worker writes job states, and no write transaction waits for
the GIL behind a busy pool (on SQLite that would stall the API's inserts) --
except the fence, one short conditional UPDATE. Each job costs four writes in
the common case (claim, ``staging`` with its workspace, the fence, ``queued``
with its Slurm id); the row is not re-read in between.
"""

from __future__ import annotations

import contextlib
import json
import logging
import posixpath
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.db import STORE_DOWN
from gateway.jobs.extra import Recovery, forward_token
from gateway.jobs.records import UNSET, Job, JobUpdate
from gateway.jobs.states import JobState
from gateway.jobs.store import JobStore
from gateway.logs import job_context
from gateway.sites import Sites
from gateway.staging import Stager, staged_summary
from gateway.staging.stager import Heartbeat
from gateway.workflow.batch import job_name, job_spec, workspace_for
from gateway.workflow.errors import InputNotOnline, StagingError, TransientStagingError
from gateway.workflow.retry import RetryPolicy, fail_job
from hpc_adapters.base import HpcIdentity, JobStatus
from hpc_adapters.errors import HpcError, PermanentHpcError, TransientHpcError
from processes.registry import ProcessRegistry
from processes.runtime import INPUTS_FILE, OUTPUTS_DIR

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submitted:
    """The job is in Slurm under ``scheduler_id``."""

    scheduler_id: str


@dataclass(frozen=True)
class Retry:
    """A transient error: back off and try again."""

    detail: str


@dataclass(frozen=True)
class Wait:
    """An input is on tape / nearline storage: wait in the gateway, then stage again."""

    detail: str
    retry_after: float | None = None


@dataclass(frozen=True)
class Failed:
    """A permanent error: the job fails with ``detail`` (HTTP-like ``status``)."""

    detail: str
    status: int = 500


@dataclass(frozen=True)
class Abandoned:
    """The lease was lost before submitting (this worker stalled past it): another
    worker owns the job now, so this one neither submits nor records anything."""

    detail: str


Outcome = Submitted | Retry | Wait | Failed | Abandoned


class LeaseLost(Exception):
    """Raised before submitting when the job's lease is no longer this worker's."""


@dataclass
class _InFlight:
    """A claimed job whose submission runs in the pool."""

    job: Job
    workspace: str
    extra: dict[str, Any]
    future: Future[Outcome] = field(repr=False)


class Dispatcher:
    """Claims due jobs and submits them as their owners, a few at a time."""

    def __init__(
        self,
        *,
        store: JobStore,
        registry: ProcessRegistry,
        sites: Sites,
        stager: Stager,
        retry: RetryPolicy,
        worker_id: str,
        batch: int = 20,
        lease_seconds: float = 120.0,
        threads: int = 4,
        reroute: Callable[[Job], Job | None] | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.sites = sites
        self.stager = stager
        self.retry = retry
        self.worker_id = worker_id
        self.batch = batch
        self.lease_seconds = lease_seconds
        self.threads = threads
        #: Routing's failover: a claimed accepted job at a down site is moved (or waits).
        self.reroute = reroute
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: dict[str, _InFlight] = {}
        self._next_renewal = 0.0

    def run_once(self, wait: bool = True) -> int:
        """Record finished submissions, then claim due jobs and start their submissions
        in the pool; returns how many jobs were claimed.

        Only as many jobs are claimed as the pool can start now (at most ``batch``):
        claimed jobs do not wait in a queue holding leases, and each claim is a
        short transaction. With ``wait`` (tests, one-shot cycles) every
        submission has ended and been recorded when it returns; without, the next
        call records them.
        """
        self._settle()
        self._renew()
        room = min(self.batch, self.threads) - len(self._inflight)
        jobs: list[Job] = []
        if room > 0:
            jobs = self.store.claim(
                self.worker_id, [JobState.ACCEPTED, JobState.STAGING], room, self.lease_seconds
            )
        for job in self._recover(self._placed(jobs)):
            with job_context(job.id, job.owner.username):
                self._start(job)
        if wait:
            self.drain()
        return len(jobs)

    def _renew(self) -> None:
        """Keep the leases of submissions under way (every third of a lease): a slow
        submission of a live worker is never taken over; a dead worker's lapse."""
        now = time.monotonic()
        if not self._inflight or now < self._next_renewal:
            return
        self._next_renewal = now + self.lease_seconds / 3
        held = self.store.renew_leases(self.worker_id, list(self._inflight), self.lease_seconds)
        for job_id in set(self._inflight) - held:
            log.warning("job %s: lease lost during its submission", job_id)

    def drain(self) -> None:
        """Wait for every submission under way, and record them."""
        wait_all([f.future for f in self._inflight.values()])
        self._settle()

    def close(self) -> None:
        """Finish and record the submissions under way; give back the ones not started."""
        pool, self._pool = self._pool, None
        not_started = [k for k, f in self._inflight.items() if f.future.cancel()]
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        for job_id in not_started:
            del self._inflight[job_id]
            self.store.release(job_id)
        self._settle()

    def dispatch(self, job: Job) -> None:
        """Stage and submit one claimed job in the calling thread (no pool)."""
        for pending in self._recover(self._placed([job])):
            with job_context(pending.id, pending.owner.username):
                started = self._begin(pending)
                if started is not None:
                    workspace, extra = started
                    outcome = self._submit_safely(pending, workspace, extra)
                    self._apply(pending, workspace, extra, outcome)

    def _placed(self, jobs: list[Job]) -> list[Job]:
        """The claimed jobs with their site checked (failover); those that must wait are out."""
        if self.reroute is None:
            return jobs
        placed = (self.reroute(job) for job in jobs)
        return [job for job in placed if job is not None]

    # -- recovery: adopt what was submitted before a crash ------------------------

    def _recover(self, jobs: list[Job]) -> list[Job]:
        """The claimed jobs that still need submitting.

        Jobs in ``staging`` may already be in Slurm: they are looked up by name,
        one call per site; those found are adopted (``queued`` with that Slurm
        id), those the site cannot tell about are deferred, the others returned.
        """
        doubtful: dict[str, list[Job]] = {}
        for job in jobs:
            # a job waiting for a nearline input stopped before its submission (the
            # marker is cleared before the fence, see _submit): nothing to look up
            if job.state is JobState.STAGING and not job.extra.get("awaiting_input"):
                doubtful.setdefault(job.site, []).append(job)
        if not doubtful:
            return jobs
        settled: set[str] = set()
        for site, site_jobs in doubtful.items():
            settled |= self._look_up(site, site_jobs)
        return [j for j in jobs if j.id not in settled]

    def _look_up(self, site: str, jobs: list[Job]) -> set[str]:
        """Adopt or defer ``jobs`` of ``site`` after one lookup; the ids settled."""
        names = {job_name(j.id): j for j in jobs}
        since = min(j.created for j in jobs) - timedelta(minutes=5)
        try:
            found = self.sites.adapter(site).find_by_names(list(names), since)
        except TransientHpcError as exc:
            for job in jobs:
                self.retry.defer(job, f"cannot tell yet whether it was submitted: {exc.detail}")
            return {j.id for j in jobs}
        except (PermanentHpcError, LookupError) as exc:
            detail = getattr(exc, "detail", str(exc))
            for job in jobs:
                fail_job(self.store, job, f"Submission to the cluster failed: {detail}")
            return {j.id for j in jobs}
        for name, statuses in found.items():
            job = names[name]
            with job_context(job.id, job.owner.username):
                self._adopt(job, site, statuses)
        return {names[n].id for n in found}

    # -- the calling thread: every job state change ----------------------------

    def _start(self, job: Job) -> None:
        started = self._begin(job)
        if started is None:
            return
        workspace, extra = started
        with contextlib.suppress(LookupError):  # built here, not by racing pool threads
            self.sites.adapter(job.site)
        future = self._executor().submit(self._submit_safely, job, workspace, extra)
        self._inflight[job.id] = _InFlight(job, workspace, extra, future)

    def _begin(self, job: Job) -> tuple[str, dict[str, Any]] | None:
        """``staging`` (unless resumed); None when the job was dismissed meanwhile."""
        workspace = workspace_for(self.sites.settings(job.site), job.id)
        if job.state is not JobState.STAGING and not self.store.transition(
            job.id,
            JobState.STAGING,
            JobUpdate(message="Staging inputs", progress=0, workspace=workspace),
        ):
            return None
        return workspace, dict(job.extra)

    def _settle(self) -> None:
        """Record the outcome of every finished submission.

        When the job store cannot take the record (PostgreSQL restarting), the
        outcome -- a Slurm job id, typically -- stays in memory and is recorded
        at a later cycle, once the store is back: the job does not wait for its
        lease to expire and for the lookup by name to find its Slurm job again.
        """
        done = [k for k, f in self._inflight.items() if f.future.done()]
        for job_id in done:
            flight = self._inflight[job_id]
            try:
                outcome = flight.future.result()
            except Exception as exc:  # a bug, or the database gone: the lease will expire
                del self._inflight[job_id]
                log.error("job %s: dispatch crashed (%s)", job_id, type(exc).__name__, exc_info=exc)
                continue
            try:
                with job_context(job_id, flight.job.owner.username):
                    self._apply(flight.job, flight.workspace, flight.extra, outcome)
            except STORE_DOWN as exc:
                log.warning("job %s: outcome not recorded yet, job store down: %s", job_id, exc)
                return  # kept in _inflight: recorded at the next cycle
            del self._inflight[job_id]

    def _apply(self, job: Job, workspace: str, extra: dict[str, Any], outcome: Outcome) -> None:
        if isinstance(outcome, Abandoned):
            log.warning("job %s: not submitted by this worker: %s", job.id, outcome.detail)
        elif isinstance(outcome, Submitted):
            self._record_submission(job, outcome.scheduler_id, workspace, extra)
        elif isinstance(outcome, Retry):
            self.retry.defer(job, outcome.detail)
        elif isinstance(outcome, Wait):
            self.retry.wait_for_input(job, outcome.detail, outcome.retry_after)
        else:
            fail_job(self.store, job, outcome.detail, status=outcome.status)

    def _adopt(self, job: Job, site: str, statuses: list[JobStatus]) -> None:
        """Record the Slurm job found for ``job`` as its own (the earliest if several)."""
        first = min(statuses, key=lambda s: (s.submit_time is None, s.submit_time, s.job_id))
        others = [s.job_id for s in statuses if s is not first]
        if others:
            log.warning("job %s: Slurm jobs %s also carry its name", job.id, others)
        log.info("job %s: adopting Slurm job %s, submitted before a restart", job.id, first.job_id)
        workspace = job.workspace or workspace_for(self.sites.settings(site), job.id)
        self._record_submission(job, first.job_id, workspace, dict(job.extra), adopted=True)

    def _record_submission(
        self,
        job: Job,
        scheduler_id: str,
        workspace: str,
        extra: dict[str, Any],
        *,
        adopted: bool = False,
    ) -> None:
        """``queued`` with the Slurm id, in one statement; a forwarded token is dropped.

        ``extra`` is the claimed row's plus what staging added: nothing else
        writes ``extra`` of a job that is being dispatched. An ``adopted`` job's
        message says it was found at the site, not submitted again.
        """
        keys: dict[str, Any] = {}
        if forward_token(extra) is not None:  # needed for the submission only: never kept
            keys["forward_token"] = None
        if adopted:  # kept for good: the final message says so too
            now = datetime.now(UTC).isoformat()
            keys.update(Recovery(scheduler_id, now, self.worker_id).key())
        update = JobUpdate(
            scheduler_job_id=scheduler_id,
            scheduler_state="PENDING",
            message=(
                f"Queued as Slurm job {scheduler_id} (recovered after a restart: found at the"
                " site and adopted, not submitted again)"
                if adopted
                else f"Queued as Slurm job {scheduler_id}"
            ),
            workspace=workspace,
            lease_owner=None,
            lease_until=None,
            next_attempt_at=None,  # from now on: set only when a notification is owed
            extra_keys=keys or UNSET,
        )
        moved = self.store.transition(job.id, JobState.QUEUED, update)
        if moved:
            log.info("job %s submitted as Slurm job %s", job.id, scheduler_id)
            return
        self._not_recorded(job, scheduler_id)

    def _not_recorded(self, job: Job, scheduler_id: str) -> None:
        """The job left ``staging`` while its submission was under way."""
        current = self.store.get(job.id)
        if current.scheduler_job_id == scheduler_id:
            return  # another worker found this very Slurm job and adopted it: all is well
        if current.scheduler_job_id is None:
            # Dismissed while we were submitting: the Slurm job must not run on.
            log.info("job %s was dismissed during submission; cancelling %s", job.id, scheduler_id)
            update = JobUpdate(scheduler_job_id=scheduler_id, cancel_pending=True)
            self.store.update(job.id, update)
            return
        # Another worker submitted it too (this one stalled past its lease): ours goes.
        log.error(
            "job %s: Slurm job %s is a second submission (the job has %s); cancelling it",
            job.id,
            scheduler_id,
            current.scheduler_job_id,
        )
        try:
            self.sites.adapter(job.site).cancel(scheduler_id, HpcIdentity(job.owner.hpc_login))
        except HpcError as exc:
            log.error("job %s: Slurm job %s not cancelled: %s", job.id, scheduler_id, exc.detail)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="hpcgw-submit")
        return self._pool

    # -- the pool: I/O only -------------------------------------------------------

    def _submit_safely(self, job: Job, workspace: str, extra: dict[str, Any]) -> Outcome:
        """:meth:`_submit`, its errors turned into what the job's record should say."""
        with job_context(job.id, job.owner.username):  # a pool thread: no context of its own
            return self._outcome(job, workspace, extra)

    def _outcome(self, job: Job, workspace: str, extra: dict[str, Any]) -> Outcome:
        try:
            return Submitted(self._submit(job, workspace, extra))
        except LeaseLost as exc:
            return Abandoned(str(exc))
        except TransientHpcError as exc:
            return Retry(exc.detail)
        except PermanentHpcError as exc:
            return Failed(f"Submission to the cluster failed: {exc.detail}")
        except InputNotOnline as exc:
            return Wait(exc.detail, exc.retry_after)
        except TransientStagingError as exc:
            return Retry(exc.detail)
        except StagingError as exc:
            return Failed(f"Input staging failed: {exc.detail}", status=400)

    def _submit(self, job: Job, workspace: str, extra: dict[str, Any]) -> str:
        """Workspace, staged inputs and ``inputs.json``, then the Slurm job; its id.

        Only called for jobs that are known not to be in Slurm yet (fresh, or
        looked up by :meth:`_recover`).

        ``extra`` (the job's, as claimed) gains the staged inputs' summary, which
        is also stored before submitting (a rare write from the pool: only jobs
        with staged references), so a resumed dispatch that finds the Slurm job
        keeps it.
        """
        adapter = self.sites.adapter(job.site)
        site = self.sites.settings(job.site)
        process = self.registry.for_job(job.process_id, job.process_version)
        identity = HpcIdentity(login=job.owner.hpc_login, token=forward_token(job.extra))
        files = adapter.files(identity)
        files.mkdir(workspace)
        files.mkdir(posixpath.join(workspace, OUTPUTS_DIR))
        inputs = self.stager.stage(
            job.inputs, files, workspace, self._heartbeat(job), process.folder_inputs()
        )
        payload = json.dumps({"job_id": job.id, "inputs": inputs}, indent=1).encode()
        files.write_bytes(posixpath.join(workspace, INPUTS_FILE), payload)
        for name, data in process.workspace_files().items():  # a deployed CWL package
            files.write_bytes(posixpath.join(workspace, name), data)
        summary = staged_summary(inputs)
        keys: dict[str, Any] = {}
        if summary:
            extra["staged_inputs"] = summary
            keys["staged_inputs"] = summary
        if extra.pop("awaiting_input", None) is not None:
            keys["awaiting_input"] = None  # from now on a crash means "look it up in Slurm"
        if keys:
            self.store.update(job.id, JobUpdate(extra_keys=keys))
        # the fence: submit only while the lease is still this worker's (a worker that
        # stalled past it may have been replaced by one that looked the job up already)
        if not self.store.renew_leases(self.worker_id, [job.id], self.lease_seconds):
            raise LeaseLost(f"job {job.id}: lease expired before submission")
        return adapter.submit(job_spec(job, process, site, workspace), identity)

    def _heartbeat(self, job: Job) -> Heartbeat:
        """Renews the job's lease during long downloads (so no other worker takes it over)."""

        def beat(fetched: int) -> None:
            until = datetime.now(UTC) + timedelta(seconds=self.lease_seconds)
            self.store.update(
                job.id,
                JobUpdate(
                    lease_until=until, message=f"Staging inputs: {fetched / 2**20:.0f} MiB fetched"
                ),
                only_if_state=JobState.STAGING,
            )

        return beat
