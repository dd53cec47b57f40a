"""Dispatcher: accepted job -> workspace, staged inputs, ``inputs.json`` -> Slurm job as the user.

Jobs are claimed with a lease (see :meth:`JobStore.claim`). A worker that dies
mid-dispatch leaves the job in ``accepted``/``staging`` with a lease that
expires; the next claim re-runs the dispatch, first asking the scheduler
whether a job with this job's name already exists, so a job is submitted once.
Transient errors back off and retry; permanent ones fail the job.
"""

from __future__ import annotations

import json
import logging
import posixpath
from datetime import UTC, datetime, timedelta

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
    """Claims due jobs and submits them, one at a time, as their owners."""

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
    ) -> None:
        self.store = store
        self.registry = registry
        self.sites = sites
        self.stager = stager
        self.retry = retry
        self.worker_id = worker_id
        self.batch = batch
        self.lease_seconds = lease_seconds

    def run_once(self) -> int:
        """Dispatch every due job; returns how many were claimed."""
        jobs = self.store.claim(
            self.worker_id, [JobState.ACCEPTED, JobState.STAGING], self.batch, self.lease_seconds
        )
        for job in jobs:
            self.dispatch(job)
        return len(jobs)

    def dispatch(self, job: Job) -> None:
        resumed = job.state is JobState.STAGING
        if not resumed and not self.store.transition(
            job.id, JobState.STAGING, message="Staging inputs", progress=0
        ):
            return  # dismissed meanwhile
        try:
            scheduler_id = self._submit(job, check_existing=resumed or job.attempts > 0)
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
        self._record_submission(job, scheduler_id)

    def _submit(self, job: Job, check_existing: bool) -> str:
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
        workspace = workspace_for(site, job.id)
        files.mkdir(workspace)
        files.mkdir(posixpath.join(workspace, OUTPUTS_DIR))
        inputs = self.stager.stage(job.inputs, files, workspace, self._heartbeat(job))
        payload = json.dumps({"job_id": job.id, "inputs": inputs}, indent=1).encode()
        files.write_bytes(posixpath.join(workspace, INPUTS_FILE), payload)
        extra = {**self.store.get(job.id).extra, "staged_inputs": staged_summary(inputs)}
        self.store.update(job.id, workspace=workspace, extra=extra)
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

    def _record_submission(self, job: Job, scheduler_id: str) -> None:
        current = self.store.get(job.id).extra  # fresh: staging recorded checksums in it
        extra = {k: v for k, v in current.items() if k != "forward_token"}
        moved = self.store.transition(
            job.id,
            JobState.QUEUED,
            extra=extra,
            scheduler_job_id=scheduler_id,
            scheduler_state="PENDING",
            message=f"Queued as Slurm job {scheduler_id}",
            workspace=workspace_for(self.sites.settings(job.site), job.id),
            lease_owner=None,
            lease_until=None,
            next_attempt_at=None,  # from now on: set only when a notification is owed
        )
        if moved:
            log.info("job %s submitted as Slurm job %s", job.id, scheduler_id)
            return
        # Dismissed while we were submitting: the Slurm job must not run on.
        log.info("job %s was dismissed during submission; cancelling %s", job.id, scheduler_id)
        self.store.update(job.id, scheduler_job_id=scheduler_id, cancel_pending=True)
