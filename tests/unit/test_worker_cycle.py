"""The worker's pacing of scheduler polls (no Slurm needed: no job is scheduled)."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.app import build_services, build_worker
from gateway.services import Services
from gateway.workflow.worker import Worker, lower_priority
from tests.conftest import make_settings

pytestmark = pytest.mark.unit


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    services: Services = build_services(
        make_settings(tmp_path, worker={"poll_interval_seconds": 0.5})
    )
    yield build_worker(services)
    services.close()


def test_polls_are_spaced_by_the_interval_or_twice_a_slow_poll(worker: Worker) -> None:
    assert worker.monitor.run_once() == 0  # nothing scheduled: no scheduler call at all
    worker.monitor.last_cycle_seconds = 0.1  # a quick poll (how quick is bench/'s business)
    assert worker.next_poll_delay() == 0.5
    worker.monitor.last_cycle_seconds = 0.45  # e.g. GET /jobs with thousands of jobs
    assert worker.next_poll_delay() == pytest.approx(0.9)


def test_a_cycle_with_nothing_to_do_does_nothing(worker: Worker) -> None:
    assert worker.run_once() == 0
    assert worker.run_fast() == 0
    worker.dispatcher.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux")
def test_only_the_worker_threads_run_at_a_lower_priority() -> None:
    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: dict[str, int] = {}

    def child() -> None:
        seen["pool"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def worker() -> None:
        lower_priority(max(main_before, 0) + 3)
        seen["worker"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        started = threading.Thread(target=child)  # e.g. the dispatcher's pool
        started.start()
        started.join()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == {"worker": max(main_before, 0) + 3, "pool": max(main_before, 0) + 3}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before


def test_pool_size_and_priority_come_from_the_settings(tmp_path: Path) -> None:
    services = build_services(make_settings(tmp_path, worker={"submit_threads": 2, "nice": 10}))
    try:
        worker = build_worker(services)
        assert (worker.dispatcher.threads, worker.nice) == (2, 10)
    finally:
        services.close()
