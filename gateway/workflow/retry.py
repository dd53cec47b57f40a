"""Backoff for transient failures, waiting for nearline inputs, and failing a job.

A nearline input (:class:`~gateway.workflow.errors.InputNotOnline`) is not a
failure: :meth:`RetryPolicy.wait_for_input` keeps the job in the gateway --
its lease released, ``next_attempt_at`` set, no Slurm job -- with the start of
the wait in ``extra["awaiting_input"]`` and a status message saying it waits
for tape. The dispatcher stages it again when due; past ``nearline_max_wait_seconds``
the job fails saying how long it waited. The waits do not use up ``max_attempts``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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
    #: Nearline inputs: wait without ``Retry-After``, longest wait between tries, longest wait.
    nearline_retry_seconds: float = 60.0
    nearline_max_retry_seconds: float = 900.0
    nearline_max_wait_seconds: float = 24 * 3600.0

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

    def wait_for_input(self, job: Job, detail: str, retry_after: float | None) -> None:
        """Keep ``job`` waiting for a nearline input, or fail it past the maximum wait."""
        now = datetime.now(UTC)
        waiting: dict[str, Any] = dict(job.extra.get("awaiting_input") or {})
        since = datetime.fromisoformat(waiting["since"]) if "since" in waiting else now
        tries = int(waiting.get("tries", 0)) + 1
        waited = (now - since).total_seconds()
        if waited >= self.nearline_max_wait_seconds:
            fail_job(
                self.store,
                job,
                f"Input not online after waiting {waited:.0f}s (limit "
                f"{self.nearline_max_wait_seconds:.0f}s): {detail}",
                status=504,
            )
            return
        fallback = backoff_delay(
            tries, self.nearline_retry_seconds, self.nearline_max_retry_seconds
        )
        delay = min(
            retry_after if retry_after is not None else fallback, self.nearline_max_retry_seconds
        )
        delay = min(delay, max(0.0, self.nearline_max_wait_seconds - waited))
        log.info(
            "job %s: waiting for a nearline input (%s); try %d in %.0fs",
            job.id,
            detail,
            tries,
            delay,
        )
        marker = {"since": since.isoformat(), "tries": tries, "detail": detail}
        update = JobUpdate(
            message=(
                f"Waiting for input from tape / nearline storage since "
                f"{since.strftime('%Y-%m-%d %H:%M:%S')} UTC ({tries} tries): {detail}; "
                f"next try in {delay:.0f}s. No cluster resources are used meanwhile."
            ),
            progress=0,
            extra_keys={"awaiting_input": marker},
        )
        self.store.release(job.id, update, retry_in=delay)
