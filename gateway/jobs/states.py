"""The one job state machine, and its tables to OGC, WPS and from the scheduler.

States have an explicit order; a job only moves forward and never leaves a
final state -- with one exception: dismissing a *finished* job (successful,
failed or already dismissed) removes it, ``-> REMOVED``. REMOVED is terminal
and hidden: the job row stays (accounting usage records reference it and the
core-hours it used are still reported), but no API shows it any more
(OGC API - Processes /req/dismiss/job-dismiss-status). The store enforces the
moves with a conditional UPDATE (see :meth:`gateway.jobs.store.JobStore.transition`),
so two workers racing on the same job cannot move it backwards, and a job
being finalised cannot be removed before it is final.
"""

from __future__ import annotations

from enum import StrEnum

from hpc_adapters.base import SchedulerState


class JobState(StrEnum):
    ACCEPTED = "accepted"
    STAGING = "staging"
    QUEUED = "queued"
    RUNNING = "running"
    PUBLISHING = "publishing"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    DISMISSED = "dismissed"
    #: A finished job dismissed by its owner: gone from every API, kept for accounting.
    REMOVED = "removed"

    @property
    def order(self) -> int:
        return _ORDER[self]

    @property
    def final(self) -> bool:
        return self in FINAL_STATES

    @property
    def visible(self) -> bool:
        """Whether the APIs show a job in this state (all but REMOVED)."""
        return self is not JobState.REMOVED

    def can_move_to(self, target: JobState) -> bool:
        """Forward only, never out of a final state; same-state is not a move.

        The one way out of a final state is REMOVED, and only from one
        (an active job is dismissed, not removed); nothing leaves REMOVED.
        """
        if target is JobState.REMOVED:
            return self in REMOVABLE_STATES
        return not self.final and target.order > self.order

    def sources(self) -> frozenset[JobState]:
        """The states from which a job may move to ``self``."""
        return frozenset(s for s in JobState if s.can_move_to(self))

    @property
    def ogc(self) -> str:
        return _OGC[self]

    @property
    def wps1(self) -> str:
        return _WPS1[self]

    @property
    def wps2(self) -> str:
        return _WPS2[self]


_ORDER = {
    JobState.ACCEPTED: 0,
    JobState.STAGING: 1,
    JobState.QUEUED: 2,
    JobState.RUNNING: 3,
    JobState.PUBLISHING: 4,
    JobState.SUCCESSFUL: 5,
    JobState.FAILED: 5,
    JobState.DISMISSED: 5,
    JobState.REMOVED: 6,
}

FINAL_STATES = frozenset(
    {JobState.SUCCESSFUL, JobState.FAILED, JobState.DISMISSED, JobState.REMOVED}
)
#: Final states a dismiss moves to REMOVED.
REMOVABLE_STATES = frozenset({JobState.SUCCESSFUL, JobState.FAILED, JobState.DISMISSED})
#: States the APIs show (the job list without a status filter lists these).
VISIBLE_STATES = frozenset(s for s in JobState if s.visible)
ACTIVE_STATES = frozenset(s for s in JobState if not s.final)
#: States in which a Slurm job exists and the monitor must follow it.
SCHEDULED_STATES = frozenset({JobState.QUEUED, JobState.RUNNING})

_OGC = {
    JobState.ACCEPTED: "accepted",
    JobState.STAGING: "running",
    JobState.QUEUED: "accepted",
    JobState.RUNNING: "running",
    JobState.PUBLISHING: "running",
    JobState.SUCCESSFUL: "successful",
    JobState.FAILED: "failed",
    JobState.DISMISSED: "dismissed",
    JobState.REMOVED: "dismissed",  # only ever shown in the answer to the dismiss
}

_WPS1 = {
    JobState.ACCEPTED: "ProcessAccepted",
    JobState.STAGING: "ProcessStarted",
    JobState.QUEUED: "ProcessAccepted",
    JobState.RUNNING: "ProcessStarted",
    JobState.PUBLISHING: "ProcessStarted",
    JobState.SUCCESSFUL: "ProcessSucceeded",
    JobState.FAILED: "ProcessFailed",
    JobState.DISMISSED: "ProcessFailed",
    JobState.REMOVED: "ProcessFailed",
}

_WPS2 = {
    JobState.ACCEPTED: "Accepted",
    JobState.STAGING: "Running",
    JobState.QUEUED: "Accepted",
    JobState.RUNNING: "Running",
    JobState.PUBLISHING: "Running",
    JobState.SUCCESSFUL: "Succeeded",
    JobState.FAILED: "Failed",
    JobState.DISMISSED: "Dismissed",
    JobState.REMOVED: "Dismissed",
}

#: OGC status values accepted in the ``status`` filter of ``GET /jobs`` (visible states only).
#: The OGC statuses a client may filter the job list by, in the life order of a job.
OGC_STATUSES: tuple[str, ...] = tuple(dict.fromkeys(_OGC[s] for s in JobState if s.visible))

OGC_STATUS_TO_STATES: dict[str, frozenset[JobState]] = {
    ogc: frozenset(s for s, o in _OGC.items() if o == ogc and s.visible)
    for ogc in set(_OGC.values())
}


def state_for_scheduler(state: SchedulerState) -> JobState:
    """Where a job stands given the scheduler's view (before finalisation).

    Ended scheduler states map to PUBLISHING: the finaliser then decides between
    successful and failed after collecting outputs.
    """
    if state is SchedulerState.PENDING or state is SchedulerState.UNKNOWN:
        return JobState.QUEUED
    if state.active:
        return JobState.RUNNING
    return JobState.PUBLISHING
