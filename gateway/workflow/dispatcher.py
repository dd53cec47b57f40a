"""Dispatcher: accepted job -> workspace, staged inputs, ``inputs.json`` -> Slurm job as the user.

Jobs are claimed with a lease (see :meth:`JobStore.claim`). A worker that dies
mid-dispatch leaves the job in ``accepted``/``staging`` with a lease that
expires; the next claim re-runs the dispatch, first asking the scheduler
whether a job with this job's name already exists, so a job is submitted once.
Transient errors back off and retry; permanent ones fail the job.

Submissions are I/O-bound (staging downloads, slurmrestd round trips), so the
claimed jobs run in a small fixed thread pool: one slow submission does not
hold up the others, nor -- with ``wait=False`` -- the worker's other stages.
Each job costs three writes in the common case (claim, ``staging`` with its
workspace, ``queued`` with its Slurm id); the row is not re-read in between.
"""

from __future__ import annotations

import contextlib
import json
import logging
import posixpath
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.jobs.records import Job
from gateway.jobs.states import JobState
from gateway.jobs.store import JobStore
from gateway.sites import Sites
from gateway.staging import Stager, StagingError, staged_summary
from gateway.staging.stager import Heartbeat
from gateway.workflow.batch import job_name, job_spec, workspace_for
from gateway.workflow.retry import RetryPolicy, fail_job
from hpc_adapters.base import HpcIdentity
from hpc_adapters.errors import PermanentHpcError, TransientHpcError
from processes.registry import ProcessRegistry
from processes.runtime import INPUTS_FILE, OUTPUTS_DIR

log = logging.getLogger(__name__)


class Dispatcher:
    """Claims due jobs and submits them as their owners, a few at a time."""

    def __init__(
        self,
        store: JobStore,
        registry: ProcessRegistry,
        sites: Sites,
        stager: Stager,
        retry: RetryPolicy,
        worker_id: str,
        batch: int = 20,
        lease_seconds: float = 120.0,
        threads: int = 4,
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
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: dict[str, Future[None]] = {}
        self._lock = threading.Lock()

    def run_once(self, wait: bool = True) -> int:
        """Claim due jobs (up to ``batch`` in flight) and dispatch them in the pool.

        With ``wait`` (tests, one-shot cycles) returns once every dispatch in
        flight has ended; without, returns at once and the next call claims only
        as many as there is room for. Returns how many jobs were claimed.
        """
        with self._lock:
            self._inflight = {k: f for k, f in self._inflight.items() if not f.done()}
            room = self.batch - len(self._inflight)
        jobs: list[Job] = []
        if room > 0:
            jobs = self.store.claim(
                self.worker_id, [JobState.ACCEPTED, JobState.STAGING], room, self.lease_seconds
            )
        for job in jobs:
            with contextlib.suppress(LookupError):  # built here, not by racing pool threads
                self.sites.adapter(job.site)
            future = self._executor().submit(self.dispatch, job)
            future.add_done_callback(_log_crash(job.id))
            with self._lock:
                self._inflight[job.id] = future
        if wait:
            self.drain()
        return len(jobs)

    def drain(self) -> None:
        """Wait until every dispatch in flight has ended."""
        with self._lock:
            pending = list(self._inflight.values())
        wait_all(pending)

    def close(self) -> None:
        """Finish the dispatches under way; queued ones are given back (lease released)."""
        with self._lock:
            pool, self._pool = self._pool, None
            queued = [job_id for job_id, f in self._inflight.items() if f.cancel()]
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        for job_id in queued:
            self.store.release(job_id)

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="hpcgw-submit")
            return self._pool

    def dispatch(self, job: Job) -> None:
        """Stage and submit one claimed job; errors back off or fail the job, never raise."""
        resumed = job.state is JobState.STAGING
        workspace = workspace_for(self.sites.settings(job.site), job.id)
        if not resumed and not self.store.transition(
            job.id, JobState.STAGING, message="Staging inputs", progress=0, workspace=workspace
        ):
            return  # dismissed meanwhile
        extra = dict(job.extra)
        try:
            scheduler_id = self._submit(
                job, workspace, extra, check_existing=resumed or job.attempts > 0
            )
        except TransientHpcError as exc:
            self.retry.defer(job, exc.detail)
            return
        except PermanentHpcError as exc:
            fail_job(self.store, job, f"Submission to the cluster failed: {exc.detail}")
            return
        except StagingError as exc:
            if exc.transient:
                self.retry.defer(job, exc.detail)
            else:
                fail_job(self.store, job, f"Input staging failed: {exc.detail}", status=400)
            return
        self._record_submission(job, scheduler_id, workspace, extra)

    def _submit(self, job: Job, workspace: str, extra: dict[str, Any], check_existing: bool) -> str:
        """Workspace, staged inputs and ``inputs.json``, then the Slurm job; its id.

        ``extra`` (the job's, as claimed) gains the staged inputs' summary.
        """
        adapter = self.sites.adapter(job.site)
        if check_existing:
            existing = adapter.find_by_name(job_name(job.id))
            if existing:
                log.info("job %s: found existing Slurm job %s", job.id, existing[0].job_id)
                return existing[0].job_id
        site = self.sites.settings(job.site)
        process = self.registry.get(job.process_id)
        identity = HpcIdentity(login=job.owner.hpc_login, token=job.extra.get("forward_token"))
        files = adapter.files(identity)
        files.mkdir(workspace)
        files.mkdir(posixpath.join(workspace, OUTPUTS_DIR))
        inputs = self.stager.stage(job.inputs, files, workspace, self._heartbeat(job))
        payload = json.dumps({"job_id": job.id, "inputs": inputs}, indent=1).encode()
        files.write_bytes(posixpath.join(workspace, INPUTS_FILE), payload)
        summary = staged_summary(inputs)
        if summary:
            # recorded before submitting: a resumed dispatch that finds the Slurm job keeps it
            extra["staged_inputs"] = summary
            self.store.update(job.id, extra=extra)
        return adapter.submit(job_spec(job, process, site, workspace), identity)

    def _heartbeat(self, job: Job) -> Heartbeat:
        """Renews the job's lease during long downloads (so no other worker takes it over)."""

        def beat(fetched: int) -> None:
            until = datetime.now(UTC) + timedelta(seconds=self.lease_seconds)
            self.store.update(
                job.id,
                only_if_state=JobState.STAGING,
                lease_until=until,
                message=f"Staging inputs: {fetched / 2**20:.0f} MiB fetched",
            )

        return beat

    def _record_submission(
        self, job: Job, scheduler_id: str, workspace: str, extra: dict[str, Any]
    ) -> None:
        """``queued`` with the Slurm id, in one statement; a forwarded token is dropped.

        ``extra`` is the claimed row's plus what staging added: nothing else
        writes ``extra`` of a job that is being dispatched.
        """
        fields: dict[str, Any] = {}
        if "forward_token" in extra:  # needed for the submission only: never kept
            fields["extra"] = {k: v for k, v in extra.items() if k != "forward_token"}
        moved = self.store.transition(
            job.id,
            JobState.QUEUED,
            scheduler_job_id=scheduler_id,
            scheduler_state="PENDING",
            message=f"Queued as Slurm job {scheduler_id}",
            workspace=workspace,
            lease_owner=None,
            lease_until=None,
            next_attempt_at=None,  # from now on: set only when a notification is owed
            **fields,
        )
        if moved:
            log.info("job %s submitted as Slurm job %s", job.id, scheduler_id)
            return
        # Dismissed while we were submitting: the Slurm job must not run on.
        log.info("job %s was dismissed during submission; cancelling %s", job.id, scheduler_id)
        self.store.update(job.id, scheduler_job_id=scheduler_id, cancel_pending=True)


def _log_crash(job_id: str) -> Callable[[Future[None]], None]:
    """A done-callback logging what escaped :meth:`Dispatcher.dispatch` (a bug, or the
    database gone); the job keeps its lease and is taken up again when it expires."""

    def done(future: Future[None]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            log.error("job %s: dispatch crashed (%s)", job_id, type(exc).__name__, exc_info=exc)

    return done
