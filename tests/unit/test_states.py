"""The job state machine: forward only, final is final, and the protocol tables."""

import pytest

from gateway.jobs.states import (
    ACTIVE_STATES,
    FINAL_STATES,
    OGC_STATUS_TO_STATES,
    VISIBLE_STATES,
    JobState,
    state_for_scheduler,
)
from hpc_adapters.base import SchedulerState

pytestmark = pytest.mark.unit


def test_forward_moves_are_allowed_and_backward_refused():
    assert JobState.ACCEPTED.can_move_to(JobState.STAGING)
    assert JobState.QUEUED.can_move_to(JobState.RUNNING)
    assert JobState.ACCEPTED.can_move_to(JobState.FAILED)
    assert not JobState.RUNNING.can_move_to(JobState.QUEUED)
    assert not JobState.RUNNING.can_move_to(JobState.RUNNING)


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_final_states_only_move_to_removed(final):
    assert all(not final.can_move_to(t) for t in JobState if t is not JobState.REMOVED)
    assert final.can_move_to(JobState.REMOVED) is (final is not JobState.REMOVED)


@pytest.mark.parametrize("active", sorted(ACTIVE_STATES))
def test_active_jobs_are_dismissed_never_removed(active):
    assert active.can_move_to(JobState.DISMISSED)
    assert not active.can_move_to(JobState.REMOVED)


def test_removed_jobs_are_hidden_everywhere_but_final():
    assert JobState.REMOVED.final and not JobState.REMOVED.visible
    assert JobState.REMOVED.sources() == {JobState.SUCCESSFUL, JobState.FAILED, JobState.DISMISSED}
    assert JobState.REMOVED not in VISIBLE_STATES
    assert all(JobState.REMOVED not in states for states in OGC_STATUS_TO_STATES.values())
    assert OGC_STATUS_TO_STATES["dismissed"] == {JobState.DISMISSED}
    # a finish and a removal racing: the finaliser's move never starts from a final state
    assert JobState.SUCCESSFUL.sources() == {
        JobState.ACCEPTED,
        JobState.STAGING,
        JobState.QUEUED,
        JobState.RUNNING,
        JobState.PUBLISHING,
    }


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
