"""Backoff for transient failures, and failing a job with an OGC exception document."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gateway.backoff import backoff_delay
from gateway.jobs.records import Job, JobUpdate
from gateway.jobs.states import JobState
from gateway.jobs.store import JobStore
from gateway.workflow.callbacks import notification_due

log = logging.getLogger(__name__)

_FAILED_TYPE = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/job-failed"


def fail_job(store: JobStore, job: Job, detail: str, status: int = 500) -> bool:
    """Move ``job`` to failed with ``detail`` as both its message and exception.

    When the job's subscriber has a ``failedUri`` the same update marks the
    callback as owed (see :mod:`gateway.workflow.callbacks`).
    """
    log.warning("job %s failed: %s", job.id, detail)
    error = {"type": _FAILED_TYPE, "title": "Job failed", "status": status, "detail": detail}
    update = JobUpdate(
        message=detail, error=error, next_attempt_at=notification_due(job, JobState.FAILED)
    )
    return store.transition(job.id, JobState.FAILED, update)


@dataclass
class RetryPolicy:
    """Exponential backoff; after ``max_attempts`` transient failures the job fails."""

    store: JobStore
    max_attempts: int = 8
    base_seconds: float = 2.0
    max_seconds: float = 300.0

    def delay(self, attempts: int) -> float:
        return backoff_delay(attempts, self.base_seconds, self.max_seconds)

    def defer(self, job: Job, detail: str) -> None:
        attempts = job.attempts + 1
        if attempts >= self.max_attempts:
            fail_job(self.store, job, f"Giving up after {attempts} attempts: {detail}")
            return
        delay = self.delay(attempts)
        log.info("job %s: transient error (%s); retry %d in %.0fs", job.id, detail, attempts, delay)
        self.store.release(
            job.id, JobUpdate(attempts=attempts, message=f"Retrying: {detail}"), retry_in=delay
        )
