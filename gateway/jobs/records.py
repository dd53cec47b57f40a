"""Typed job records crossing from the store to the workflow and HTTP layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.jobs.states import JobState


@dataclass(frozen=True)
class Owner:
    """Who owns a job: identity-provider subject, display name and HPC login."""

    sub: str
    username: str
    hpc_login: str


@dataclass(frozen=True)
class NewJob:
    """Everything needed to create a job row (state ``accepted``)."""

    id: str
    process_id: str
    process_version: str
    owner: Owner
    site: str
    inputs: dict[str, Any]
    outputs_request: dict[str, Any] | None = None
    response: str = "document"
    interface: str = "ogcapi"
    quote: dict[str, Any] | None = None
    subscriber: dict[str, str] | None = None
    project: str | None = None
    #: The user's bearer token for slurmrestd forward mode; dropped at submission.
    forward_token: str | None = None


@dataclass(frozen=True)
class Job:
    """One row of the job store, as read."""

    id: str
    process_id: str
    process_version: str
    state: JobState
    owner: Owner
    site: str
    interface: str
    inputs: dict[str, Any]
    outputs_request: dict[str, Any] | None
    response: str
    created: datetime
    updated: datetime
    started: datetime | None = None
    finished: datetime | None = None
    progress: int | None = None
    message: str | None = None
    scheduler_job_id: str | None = None
    scheduler_state: str | None = None
    exit_code: int | None = None
    workspace: str | None = None
    results: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    attempts: int = 0
    next_attempt_at: datetime | None = None
    cancel_pending: bool = False
    quote: dict[str, Any] | None = None
    subscriber: dict[str, str] | None = None
    project: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.state.final


@dataclass(frozen=True)
class JobPage:
    """One page of a job listing; ``next_cursor`` is None on the last page."""

    jobs: list[Job]
    next_cursor: str | None
    total: int | None = None
