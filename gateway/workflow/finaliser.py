"""Finaliser: ended Slurm job -> outputs published, final state set with a useful message.

Jobs reach ``publishing`` from the monitor; the finaliser claims them with a
lease like the dispatcher, so a worker that dies mid-publication leaves the
job to be finalised again by the next one (publication is idempotent).
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable

from gateway.errors import BadRequest
from gateway.jobs.extra import recovered_note
from gateway.jobs.records import Job, JobUpdate
from gateway.jobs.states import JobState
from gateway.jobs.store import JobStore
from gateway.logs import job_context
from gateway.publication.publisher import ManifestError, Publisher
from gateway.sites import Sites
from gateway.strict_json import decode_json
from gateway.workflow.batch import STDERR
from gateway.workflow.callbacks import notification_due
from gateway.workflow.errors import PublicationError, TransientPublicationError
from gateway.workflow.retry import RetryPolicy, fail_job
from hpc_adapters.base import HpcIdentity, WorkspaceFiles
from hpc_adapters.errors import PermanentHpcError, TransientHpcError
from processes.registry import ProcessRegistry
from processes.runtime import OUTPUTS_FILE

log = logging.getLogger(__name__)

_STDERR_TAIL = 2000

#: Called with the jobs a finaliser run brought to their final state (usage records):
#: once per run, so a hook can write for all of them in one transaction.
FinalHook = Callable[[list[Job]], None]


class Finaliser:
    def __init__(
        self,
        *,
        store: JobStore,
        registry: ProcessRegistry,
        sites: Sites,
        publisher: Publisher,
        retry: RetryPolicy,
        worker_id: str,
        max_manifest_bytes: int,
        lease_seconds: float = 120.0,
        hooks: list[FinalHook] | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.sites = sites
        self.publisher = publisher
        self.retry = retry
        self.worker_id = worker_id
        self.max_manifest_bytes = max_manifest_bytes
        self.lease_seconds = lease_seconds
        self.hooks = hooks or []

    def run_once(self, limit: int = 20) -> int:
        """Finalise up to ``limit`` ended jobs; returns how many were claimed."""
        jobs = self.store.claim(self.worker_id, [JobState.PUBLISHING], limit, self.lease_seconds)
        for job in jobs:
            with job_context(job.id, job.owner.username):
                self._finalise(job)
        self._after([job.id for job in jobs])
        return len(jobs)

    def finalise(self, job: Job) -> None:
        """Finalise one ended job, hooks included (tools and tests; runs use run_once)."""
        self._finalise(job)
        self._after([job.id])

    def _after(self, ids: list[str]) -> None:
        """The hooks, with those of ``ids`` now final (re-read: one SELECT for all)."""
        if not self.hooks or not ids:
            return
        finals = [job for job in self.store.many(ids) if job.final]
        if finals:
            for hook in self.hooks:
                hook(finals)

    def _finalise(self, job: Job) -> None:
        files = self.sites.adapter(job.site).files(HpcIdentity(job.owner.hpc_login))
        try:
            if job.scheduler_state == "COMPLETED" and (job.exit_code or 0) == 0:
                self._succeed(job, files)
            else:
                fail_job(self.store, job, self._failure_detail(job, files))
        except TransientHpcError as exc:
            self.retry.defer(job, exc.detail)
            return
        except PermanentHpcError as exc:
            fail_job(self.store, job, f"Collecting outputs failed: {exc.detail}")

    def _succeed(self, job: Job, files: WorkspaceFiles) -> None:
        raw = files.read_bytes(
            posixpath.join(job.workspace or "", OUTPUTS_FILE), self.max_manifest_bytes
        )
        if raw is None:
            detail = "The process ended without writing its outputs (outputs.json)."
            fail_job(self.store, job, _with_stderr(detail, self._stderr(job, files)))
            return
        try:
            # strict, as for a client's input: the job's own code wrote it (no NaN, no
            # lone surrogate -- either would make the job's results unreadable)
            manifest = decode_json(raw, what="outputs.json")
            if not isinstance(manifest, dict):
                raise ManifestError("outputs.json must hold a JSON object")
            published = self.publisher.publish(
                job, self.registry.for_job(job.process_id, job.process_version), manifest, files
            )
        except BadRequest as exc:
            fail_job(self.store, job, f"Invalid process outputs: {exc.detail}")
            return
        except (ValueError, ManifestError) as exc:
            fail_job(self.store, job, f"Invalid process outputs: {exc}")
            return
        except TransientPublicationError as exc:
            self.retry.defer(job, f"Publishing outputs: {exc.detail}")
            return
        except PublicationError as exc:
            fail_job(self.store, job, f"Publishing outputs failed: {exc.detail}")
            return
        moved = self.store.transition(
            job.id,
            JobState.SUCCESSFUL,
            JobUpdate(
                results=published.results,
                progress=100,
                message="Job completed successfully" + recovered_note(job.extra),
                extra_keys={"publication": published.record},
                next_attempt_at=notification_due(job, JobState.SUCCESSFUL),
            ),
        )
        if not moved and self.store.get(job.id).state is JobState.DISMISSED:
            self._withdraw(job)  # dismissed while publishing: nobody may read them now
            return
        log.info("job %s successful", job.id)

    def _withdraw(self, job: Job) -> None:
        try:
            self.publisher.remove(job)
        except PublicationError as exc:
            log.warning("job %s: published outputs not removed yet: %s", job.id, exc.detail)
            self.store.update(job.id, JobUpdate(cleanup_pending=True))  # the Cleaner tries again

    def _failure_detail(self, job: Job, files: WorkspaceFiles) -> str:
        state = job.scheduler_state or "UNKNOWN"
        reasons = {
            "TIMEOUT": "it exceeded its time limit",
            "OUT_OF_MEMORY": "it ran out of memory",
            "CANCELLED": "it was cancelled",
            "NODE_FAIL": "its compute node failed",
        }
        why = reasons.get(state, f"it ended in state {state}")
        detail = f"Slurm job {job.scheduler_job_id} failed: {why}"
        if job.exit_code:
            detail += f" (exit code {job.exit_code})"
        detail += recovered_note(job.extra)
        return _with_stderr(detail + ".", self._stderr(job, files))

    def _stderr(self, job: Job, files: WorkspaceFiles) -> str:
        if not job.workspace:
            return ""
        try:
            raw = files.read_bytes(posixpath.join(job.workspace, STDERR), 10 * 1024 * 1024)
        except PermanentHpcError:
            return ""
        if not raw:
            return ""
        return raw[-_STDERR_TAIL:].decode("utf-8", errors="replace").strip()


def _with_stderr(detail: str, tail: str) -> str:
    return f"{detail} Last lines of stderr:\n{tail}" if tail else detail
