"""The job state machine: forward only, final is final, and the protocol tables."""

import pytest

from gateway.jobs.states import FINAL_STATES, JobState, state_for_scheduler
from hpc_adapters.base import SchedulerState

pytestmark = pytest.mark.unit


def test_forward_moves_are_allowed_and_backward_refused():
    assert JobState.ACCEPTED.can_move_to(JobState.STAGING)
    assert JobState.QUEUED.can_move_to(JobState.RUNNING)
    assert JobState.ACCEPTED.can_move_to(JobState.FAILED)
    assert not JobState.RUNNING.can_move_to(JobState.QUEUED)
    assert not JobState.RUNNING.can_move_to(JobState.RUNNING)


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_final_states_never_move(final):
    assert all(not final.can_move_to(t) for t in JobState)


def test_every_state_has_ogc_and_wps_names():
    for state in JobState:
        assert state.ogc in {"accepted", "running", "successful", "failed", "dismissed"}
        assert state.wps1.startswith("Process")
        assert state.wps2 in {"Accepted", "Running", "Succeeded", "Failed", "Dismissed"}


def test_unknown_scheduler_state_is_never_success():
    assert SchedulerState.UNKNOWN.active
    assert not SchedulerState.UNKNOWN.succeeded
    assert state_for_scheduler(SchedulerState.UNKNOWN) is JobState.QUEUED


@pytest.mark.parametrize(
    ("scheduler", "expected"),
    [
        (SchedulerState.PENDING, JobState.QUEUED),
        (SchedulerState.RUNNING, JobState.RUNNING),
        (SchedulerState.COMPLETING, JobState.RUNNING),
        (SchedulerState.COMPLETED, JobState.PUBLISHING),
        (SchedulerState.TIMEOUT, JobState.PUBLISHING),
        (SchedulerState.OUT_OF_MEMORY, JobState.PUBLISHING),
    ],
)
def test_scheduler_table(scheduler, expected):
    assert state_for_scheduler(scheduler) is expected
