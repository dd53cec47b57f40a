"""The worker's pacing of scheduler polls (no Slurm needed: no job is scheduled)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.app import Services, build_services
from gateway.workflow.worker import Worker
from tests.conftest import make_settings

pytestmark = pytest.mark.unit


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Worker]:
    services: Services = build_services(
        make_settings(tmp_path, worker={"poll_interval_seconds": 0.5})
    )
    yield Worker.from_services(services)
    services.close()


def test_polls_are_spaced_by_the_interval_or_twice_a_slow_poll(worker: Worker) -> None:
    assert worker.monitor.run_once() == 0  # nothing scheduled: no scheduler call at all
    assert 0 <= worker.monitor.last_cycle_seconds < worker.interval
    assert worker.next_poll_delay() == 0.5
    worker.monitor.last_cycle_seconds = 0.45  # e.g. GET /jobs with thousands of jobs
    assert worker.next_poll_delay() == pytest.approx(0.9)


def test_a_cycle_with_nothing_to_do_does_nothing(worker: Worker) -> None:
    assert worker.run_once() == 0
    assert worker.run_fast() == 0
    worker.dispatcher.close()
