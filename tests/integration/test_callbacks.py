"""Subscriber callbacks: delivered to a real HTTP receiver on loopback, retried with
backoff across notifier restarts, bounded in time, refused by the egress guard.
The job store is real (SQLite); jobs reach their states through the store's own
transitions, the way the workflow moves them.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.jobs.records import Job, JobUpdate, NewJob, Owner
from gateway.jobs.states import JobState
from gateway.services import Services
from gateway.workflow.callbacks import Notifier, notification_due
from gateway.workflow.retry import fail_job
from tests.workflow_fixtures import CallbackReceiver

pytestmark = pytest.mark.integration

OWNER = Owner("sub-alice", "alice", "alice")


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    workflow = {
        "egress": {"allow_cidrs": ["127.0.0.1/32"]},
        "callbacks": {
            "timeout_seconds": 1.0,
            "backoff_base_seconds": 0.0,
            "max_attempts": 4,
            "progress_min_interval_seconds": 0.0,
            "cycle_budget_seconds": 3.0,
        },
    }
    return {"workflow": workflow}


def notifier(services: Services, worker: str = "w1") -> Notifier:
    s = services.settings
    return Notifier(
        store=services.store,
        settings=s.workflow.callbacks,
        policy=services.egress,
        base_url="http://gw",
        worker_id=worker,
    )


def new_job(services: Services, subscriber: dict[str, str]) -> Job:
    return services.store.create(
        NewJob(
            id=str(uuid.uuid4()),
            process_id="echo",
            process_version="1.0.0",
            owner=OWNER,
            site="dev",
            inputs={"string_input": "x"},
            subscriber=subscriber,
        )
    )


def to_running(services: Services, job: Job, progress: int = 0) -> Job:
    for state in (JobState.STAGING, JobState.QUEUED, JobState.RUNNING):
        assert services.store.transition(job.id, state, JobUpdate(next_attempt_at=None))
    services.store.update(job.id, JobUpdate(progress=progress, message=f"{progress}% done"))
    return services.store.get(job.id)


def succeed(services: Services, job: Job, results: dict[str, Any]) -> None:
    job = to_running(services, job)
    assert services.store.transition(job.id, JobState.PUBLISHING)
    assert services.store.transition(
        job.id,
        JobState.SUCCESSFUL,
        JobUpdate(results=results, next_attempt_at=notification_due(job, JobState.SUCCESSFUL)),
    )


def test_success_posts_the_results_document_once(
    services: Services, callback_receiver: CallbackReceiver
) -> None:
    job = new_job(services, {"successUri": f"{callback_receiver.url}/ok"})
    succeed(services, job, {"string_output": "x"})
    assert notifier(services).run_once() == 1
    (got,) = callback_receiver.on("/ok")
    assert got.body == {"string_output": "x"}
    assert got.headers["Content-Type"] == "application/json"
    assert f"/jobs/{job.id}>" in got.headers["Link"]
    done = services.store.get(job.id)
    assert done.next_attempt_at is None
    assert done.extra["callbacks"]["success"]["status"] == "delivered"
    assert notifier(services).run_once() == 0
    assert len(callback_receiver.on("/ok")) == 1


def test_failure_posts_the_exception_to_failed_uri(
    services: Services, callback_receiver: CallbackReceiver
) -> None:
    job = new_job(
        services,
        {"successUri": f"{callback_receiver.url}/ok", "failedUri": f"{callback_receiver.url}/ko"},
    )
    fail_job(services.store, job, "Input staging failed: boom", status=400)
    notifier(services).run_once()
    assert not callback_receiver.on("/ok")
    (got,) = callback_receiver.on("/ko")
    assert got.body["jobID"] == job.id and got.body["status"] == 400
    assert got.body["detail"] == "Input staging failed: boom"


def test_retried_with_backoff_and_survives_restarts(
    services: Services, callback_receiver: CallbackReceiver
) -> None:
    callback_receiver.answers["/flaky"] = [503, 500]
    job = new_job(services, {"successUri": f"{callback_receiver.url}/flaky"})
    succeed(services, job, {"string_output": "x"})
    for attempt, worker in enumerate(("w1", "w2", "w3"), start=1):  # a new notifier each time
        notifier(services, worker).run_once()
        record = services.store.get(job.id).extra["callbacks"]["success"]
        if attempt < 3:
            assert record["status"] == "retrying" and record["attempts"] == attempt
            assert "503" in record["last_error"] or "500" in record["last_error"]
            time.sleep(0.05)
            services.store.acquire_lease("callbacks", worker, 0)  # the old worker is gone
        else:
            assert record["status"] == "delivered"
    assert len(callback_receiver.on("/flaky")) == 3


def test_backoff_schedules_the_next_attempt_later(
    services: Services, callback_receiver: CallbackReceiver
) -> None:
    callback_receiver.answers["/down"] = [503]
    job = new_job(services, {"successUri": f"{callback_receiver.url}/down"})
    succeed(services, job, {})
    n = notifier(services)
    n.settings = n.settings.model_copy(update={"backoff_base_seconds": 30.0})
    n.run_once()
    due = services.store.get(job.id).next_attempt_at
    assert due is not None and (due - datetime.now(UTC)).total_seconds() > 20
    assert n.run_once() == 0  # not due yet


def test_client_errors_are_not_retried(
    services: Services, callback_receiver: CallbackReceiver
) -> None:
    callback_receiver.answers["/gone"] = [404]
    job = new_job(services, {"successUri": f"{callback_receiver.url}/gone"})
    succeed(services, job, {})
    notifier(services).run_once()
    record = services.store.get(job.id).extra["callbacks"]["success"]
    assert record["status"] == "abandoned" and "404" in record["last_error"]
    assert services.store.get(job.id).next_attempt_at is None


def test_delivery_is_behind_the_egress_guard(
    services: Services, callback_receiver: CallbackReceiver
) -> None:
    """A URL stored before the policy changed (or rebinding) is refused at delivery."""
    port = callback_receiver.url.rsplit(":", 1)[1]
    job = new_job(services, {"successUri": f"http://127.0.0.2:{port}/x"})
    succeed(services, job, {})
    notifier(services).run_once()
    record = services.store.get(job.id).extra["callbacks"]["success"]
    assert record["status"] == "abandoned" and "not allowed" in record["last_error"]
    assert not callback_receiver.received


def test_slow_subscribers_do_not_block_the_cycle(
    services: Services, callback_receiver: CallbackReceiver
) -> None:
    callback_receiver.delay["/slow"] = 3.0
    jobs = [new_job(services, {"successUri": f"{callback_receiver.url}/slow"}) for _ in range(5)]
    for job in jobs:
        succeed(services, job, {})
    handled = notifier(services).run_once()
    # 1 s timeout per POST, 3 s budget per cycle: a few handled, the rest left for later
    # (how long the cycle took is bench/'s business, not an assertion here)
    assert 1 <= handled < 5
    record = services.store.get(jobs[0].id).extra["callbacks"]["success"]
    assert record["status"] == "retrying" and "timed out" in record["last_error"]


def test_in_progress_notifications_follow_progress(
    services: Services, callback_receiver: CallbackReceiver
) -> None:
    job = new_job(
        services,
        {
            "successUri": f"{callback_receiver.url}/ok",
            "inProgressUri": f"{callback_receiver.url}/p",
        },
    )
    n = notifier(services)
    running = to_running(services, job, progress=40)
    n.progress_changed([running])
    n.run_once()
    (first,) = callback_receiver.on("/p")
    assert first.body["status"] == "running" and first.body["progress"] == 40
    assert first.body["jobID"] == job.id
    n.progress_changed([services.store.get(job.id)])  # nothing new: no POST
    n.run_once()
    assert len(callback_receiver.on("/p")) == 1
    services.store.update(job.id, JobUpdate(progress=70, message="70% done"))
    n.progress_changed([services.store.get(job.id)])
    n.run_once()
    assert [r.body["progress"] for r in callback_receiver.on("/p")] == [40, 70]
