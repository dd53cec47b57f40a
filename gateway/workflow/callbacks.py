"""Subscriber callbacks (OGC API - Processes, requirement class ``callback``).

An execute request may carry ``subscriber: {successUri, inProgressUri, failedUri}``.
The notifier POSTs JSON to them:

==============  =====================================  ===============================
URI             when                                   body
==============  =====================================  ===============================
inProgressUri   the job started running; new progress  the job's status info
successUri      the job succeeded                      the results document
failedUri       the job failed                         the job's exception document
==============  =====================================  ===============================

Durability without a queue table: a notification is owed when the job row's
``next_attempt_at`` is set -- final transitions set it (:func:`notification_due`)
in the same UPDATE that ends the job, the monitor sets it on progress -- and
delivery state (attempts, last error, what was sent) lives in
``job.extra["callbacks"]`` (one :class:`~gateway.jobs.extra.CallbackRecord` per
event). A restarted worker finds owed notifications in the table. One worker
at a time delivers (named lease ``callbacks``), a few per cycle within a time
budget, each POST with short timeouts, through the egress guard, never
following redirects. Failures are retried with exponential backoff up to
``max_attempts``; 4xx answers (but 408/429) and egress refusals are not
retried. In-progress notifications are coalesced: what is sent is the status
at sending time, at most once per ``progress_min_interval_seconds``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from gateway.backoff import RETRYABLE_STATUS, backoff_delay
from gateway.egress import EgressPolicy, EgressRefused, UnresolvableHost, guarded_client
from gateway.jobs.extra import CallbackRecord, callback_records, callbacks_key
from gateway.jobs.records import UNSET, Job, JobUpdate
from gateway.jobs.states import JobState
from gateway.jobs.status import status_info
from gateway.jobs.store import JobStore
from gateway.logs import job_context
from gateway.settings_workflow import CallbackSettings

log = logging.getLogger(__name__)

SUCCESS, FAILED, PROGRESS = "success", "failed", "inProgress"
_URI = {SUCCESS: "successUri", FAILED: "failedUri", PROGRESS: "inProgressUri"}
_STATES = [JobState.RUNNING, JobState.SUCCESSFUL, JobState.FAILED, JobState.QUEUED]


def notification_due(job: Job, target: JobState) -> datetime | None:
    """``next_attempt_at`` for a job reaching the final ``target``: now if a callback is owed."""
    event = {JobState.SUCCESSFUL: SUCCESS, JobState.FAILED: FAILED}.get(target)
    if event and _URI[event] in (job.subscriber or {}):
        return datetime.now(UTC)
    return None


def _event(job: Job) -> str | None:
    return {JobState.SUCCESSFUL: SUCCESS, JobState.FAILED: FAILED, JobState.RUNNING: PROGRESS}.get(
        job.state
    )


class Notifier:
    """Delivers owed callbacks, a bounded amount of work per worker cycle."""

    def __init__(
        self,
        *,
        store: JobStore,
        settings: CallbackSettings,
        policy: EgressPolicy,
        base_url: str,
        worker_id: str,
        client_factory: Callable[[], httpx.Client] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.base_url = base_url.rstrip("/")
        self.worker_id = worker_id
        timeout = httpx.Timeout(settings.timeout_seconds)
        self.client_factory = client_factory or (
            lambda: guarded_client(policy, timeout=timeout, follow_redirects=False)
        )

    # -- enqueueing (monitor hook) ----------------------------------------------

    def progress_changed(self, jobs: list[Job]) -> None:
        """Monitor hook: owe an in-progress notification to running jobs that ask for one."""
        now = datetime.now(UTC)
        interval = timedelta(seconds=self.settings.progress_min_interval_seconds)
        for job in jobs:
            if _URI[PROGRESS] not in (job.subscriber or {}):
                continue
            sent_at = callback_records(job.extra).get(PROGRESS, CallbackRecord()).last_attempt
            due = now
            if sent_at is not None:
                due = max(now, sent_at + interval)
            self.store.update(
                job.id, JobUpdate(next_attempt_at=due), only_if_state=JobState.RUNNING
            )

    # -- delivery ---------------------------------------------------------------

    def run_once(self) -> int:
        """Deliver what is due, within the cycle budget; returns how many jobs were handled."""
        lease = self.settings.cycle_budget_seconds + 2 * self.settings.timeout_seconds + 5
        if not self.store.acquire_lease("callbacks", self.worker_id, lease):
            return 0
        deadline = time.monotonic() + self.settings.cycle_budget_seconds
        handled = 0
        for job in self.store.due_notifications(_STATES, self.settings.batch):
            if time.monotonic() > deadline:
                break
            with job_context(job.id, job.owner.username):
                self.notify(job)
            handled += 1
        return handled

    def notify(self, job: Job) -> None:
        """Deliver the notification owed for ``job`` now (one POST at most)."""
        event = _event(job)
        uri = (job.subscriber or {}).get(_URI[event]) if event else None
        records = callback_records(job.extra)
        record = records.get(event or "", CallbackRecord())
        payload = self._payload(job, event) if event and uri else None
        if (
            event is None
            or uri is None
            or payload is None
            or record.status == "abandoned"
            or (event != PROGRESS and record.status == "delivered")
        ):
            self._settle(job, records, None)  # nothing (more) owed
            return
        delivered, retry, detail = self._post(uri, payload, job)
        now = datetime.now(UTC)
        attempts = record.attempts + 1
        tried = replace(record, attempts=attempts, at=now.isoformat(), last_error=detail)
        next_at: datetime | None = None
        if delivered:
            sent = (job.progress, job.message) if event == PROGRESS else record.sent
            tried = replace(tried, status="delivered", attempts=0, last_error=None, sent=sent)
            log.info("job %s: %s callback delivered to %s", job.id, event, uri)
        elif retry and attempts < self.settings.max_attempts:
            tried = replace(tried, status="retrying")
            next_at = now + timedelta(seconds=self._backoff(attempts))
            log.info("job %s: %s callback failed (%s); will retry", job.id, event, detail)
        else:
            tried = replace(tried, status="abandoned")
            log.warning("job %s: %s callback to %s abandoned: %s", job.id, event, uri, detail)
        records[event] = tried
        self._settle(job, records, next_at)

    def _payload(self, job: Job, event: str) -> dict[str, Any] | None:
        if event == SUCCESS:
            return dict(job.results or {})
        if event == FAILED:
            error = dict(job.error or {})
            error.setdefault("detail", job.message or "the job failed")
            return {**error, "jobID": job.id}
        sent = callback_records(job.extra).get(PROGRESS, CallbackRecord()).sent
        if sent == (job.progress, job.message):
            return None  # nothing new since the last notification
        return status_info(job, self.base_url)

    def _backoff(self, attempts: int) -> float:
        return backoff_delay(
            attempts, self.settings.backoff_base_seconds, self.settings.backoff_max_seconds
        )

    def _post(self, uri: str, payload: dict[str, Any], job: Job) -> tuple[bool, bool, str]:
        """(delivered, worth retrying, detail)."""
        link = f'<{self.base_url}/jobs/{job.id}>; rel="monitor"'
        try:
            with self.client_factory() as client:
                resp = client.post(uri, json=payload, headers={"Link": link})
        except EgressRefused as exc:
            return False, False, exc.detail
        except UnresolvableHost as exc:
            return False, True, exc.detail
        except httpx.TimeoutException:
            return False, True, "timed out"
        except httpx.HTTPError as exc:
            return False, True, f"request failed ({exc})"
        if 200 <= resp.status_code < 300:
            return True, False, ""
        detail = f"subscriber answered {resp.status_code}"
        return False, resp.status_code in RETRYABLE_STATUS, detail

    def _settle(
        self, job: Job, records: dict[str, CallbackRecord], next_at: datetime | None
    ) -> None:
        """Record delivery state; reschedule unless the job moved on meanwhile."""
        current = self.store.get(job.id)
        keys = callbacks_key(records) or UNSET  # only this key: other writers' keys stay
        if current.state is job.state:
            self.store.update(
                job.id, JobUpdate(extra_keys=keys, next_attempt_at=next_at), only_if_state=job.state
            )
        elif keys is not UNSET:  # e.g. running -> publishing: the new state owns next_attempt_at
            self.store.update(job.id, JobUpdate(extra_keys=keys))
