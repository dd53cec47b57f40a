"""Typed job records crossing from the store to the workflow and HTTP layers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime
from enum import Enum
from typing import Any, Final

from gateway.jobs.states import JobState
from gateway.paging import DEFAULT_JOB_LIMIT


@dataclass(frozen=True)
class Owner:
    """Who owns a job: identity-provider subject, display name and HPC login."""

    sub: str
    username: str
    hpc_login: str


#: What a field of an old stored quote that lacks it reads as, by its type.
_BLANK: dict[str, Any] = {"int": 0, "float": 0.0, "str": ""}


@dataclass(frozen=True)
class Quote:
    """The price of one run, before it runs (:mod:`gateway.accounting.quotes` makes it).

    A job keeps it as this record (``Job.quote``); ``to_dict()`` is what its row stores.
    """

    process_id: str
    process_version: str
    site: str
    partition: str
    project: str
    cores: int
    memory_mb: int
    walltime_limit_seconds: int
    estimated_seconds: int
    core_hours: float
    max_core_hours: float
    billing_units: float
    price_per_core_hour: float
    cost: float
    max_cost: float
    currency: str
    basis: dict[str, Any] = field(default_factory=dict)
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        """What the job row's ``quote`` column holds."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Quote:
        """The quote a job row recorded.

        Keys this version does not know are ignored; a key an older version did
        not write reads as 0 (numbers) or "" (text), so an old row never breaks
        reading its job.
        """
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in data:
                values[f.name] = data[f.name]
            elif f.default is MISSING and f.default_factory is MISSING:
                values[f.name] = _BLANK.get(str(f.type), "")
        return cls(**values)

    def reserved(self, basis: str) -> float:
        """Core-hours a submission reserves against budgets (``estimate`` or ``limit``)."""
        return self.max_core_hours if basis == "limit" else self.core_hours


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
    quote: Quote | None = None
    subscriber: dict[str, str] | None = None
    project: str | None = None
    #: The user's bearer token for slurmrestd forward mode; dropped at submission.
    forward_token: str | None = None
    #: The client (portal) that submitted on the owner's behalf, kept for the record.
    submitted_via: str | None = None
    #: Why the job goes to ``site`` (``extra["routing"]``, see gateway.routing.router).
    routing: dict[str, Any] | None = None
    #: What started the job when no client did (``extra["trigger"]``: trigger, event).
    origin: dict[str, Any] | None = None


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
    quote: Quote | None = None
    subscriber: dict[str, str] | None = None
    project: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.state.final

    @property
    def published(self) -> bool:
        """The job has published results that have not expired (it has a STAC Item)."""
        return publication_live(self.extra.get("publication"))

    @property
    def routing_reason(self) -> str | None:
        """Why the job runs at its site (None for jobs from before routing)."""
        routing = self.extra.get("routing")
        reason = routing.get("reason") if isinstance(routing, dict) else None
        return reason if isinstance(reason, str) else None


def publication_live(publication: Any) -> bool:
    """Whether ``extra["publication"]`` records results that are still published."""
    return isinstance(publication, dict) and not publication.get("expired")


@dataclass(slots=True)
class JobSummary:
    """What a job list shows of a job (its status info), read without the heavy columns.

    The job list reads 100 of these per request: no inputs, results, quote or
    other JSON columns, and its times come formatted by the database as the
    text status documents show: RFC 3339, UTC, to the millisecond (``...Z``).
    Not frozen: a frozen dataclass sets each field through ``object.__setattr__``,
    ~10x the cost of building one (bench/README.md, job list); treat it as read-only.
    """

    id: str
    process_id: str
    state: JobState
    response: str
    #: The exact creation time: orders the list and makes its page cursor.
    created: datetime
    created_text: str
    updated_text: str
    started_text: str | None
    finished_text: str | None
    progress: int | None
    message: str | None
    scheduler_job_id: str | None
    #: The job has published results that have not expired (it has a STAC Item).
    published: bool = False
    site: str = ""
    #: Why the job runs at ``site`` (``extra.routing.reason``), if it was routed.
    routing_reason: str | None = None

    @property
    def final(self) -> bool:
        return self.state.final


@dataclass(frozen=True, slots=True)
class ScheduledRef:
    """What the worker needs to look for a scheduled job's end record: its workspace,
    read as its HPC login (a projection: read every fast cycle)."""

    id: str
    workspace: str
    hpc_login: str


@dataclass(frozen=True)
class JobPage:
    """One page of a job listing; ``next_cursor`` is None on the last page."""

    jobs: list[Job]
    next_cursor: str | None
    total: int | None = None


@dataclass(frozen=True)
class SummaryPage:
    """One page of job summaries (the OGC job list); ``next_cursor`` is None on the last page."""

    jobs: list[JobSummary]
    next_cursor: str | None


@dataclass(frozen=True)
class CreatedRange:
    """Jobs created in ``[start, end)``; a None end is open (OGC ``datetime`` filter)."""

    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class DurationRange:
    """Jobs that ran between ``min_seconds`` and ``max_seconds``, both inclusive.

    The run duration is started -> finished, or started -> now while running; a
    job that never started has no duration and matches no duration range.
    """

    min_seconds: int | None = None
    max_seconds: int | None = None


@dataclass(frozen=True)
class JobQuery:
    """One page of a job listing to read: every filter and the page size, as one value.

    Every given filter must match. ``owner_sub`` None lists every owner
    (admins); empty ``process_ids`` / ``states`` do not filter; ``published``
    keeps only jobs whose results are published and not expired (the STAC
    catalog). ``cursor`` is the previous page's ``next_cursor``.
    """

    owner_sub: str | None = None
    process_ids: tuple[str, ...] = ()
    states: frozenset[JobState] = frozenset()
    created: CreatedRange | None = None
    duration: DurationRange | None = None
    published: bool = False
    cursor: str | None = None
    limit: int = DEFAULT_JOB_LIMIT


class Unset(Enum):
    """The type of :data:`UNSET`."""

    UNSET = "unset"


#: A field of a :class:`JobUpdate` that is left as it is (None *sets* NULL).
UNSET: Final = Unset.UNSET


@dataclass(frozen=True)
class JobUpdate:
    """The columns one store write changes, typed; a field left :data:`UNSET` is untouched.

    What :meth:`~gateway.jobs.store.JobStore.transition`,
    :meth:`~gateway.jobs.store.JobStore.update` and
    :meth:`~gateway.jobs.store.JobStore.release` take instead of keyword column
    names, so a misspelt column is a type error, not a runtime one. ``state``
    is not here: only ``transition`` changes it.
    """

    message: str | Unset | None = UNSET
    #: Only while ``accepted`` (routing's failover moves a job not yet submitted).
    site: str | Unset = UNSET
    progress: int | Unset | None = UNSET
    created: datetime | Unset = UNSET
    started: datetime | Unset | None = UNSET
    finished: datetime | Unset | None = UNSET
    scheduler_job_id: str | Unset | None = UNSET
    scheduler_state: str | Unset | None = UNSET
    exit_code: int | Unset | None = UNSET
    workspace: str | Unset | None = UNSET
    results: dict[str, Any] | Unset | None = UNSET
    error: dict[str, Any] | Unset | None = UNSET
    attempts: int | Unset = UNSET
    next_attempt_at: datetime | Unset | None = UNSET
    lease_owner: str | Unset | None = UNSET
    lease_until: datetime | Unset | None = UNSET
    cancel_pending: bool | Unset = UNSET
    cleanup_pending: bool | Unset = UNSET
    extra: dict[str, Any] | Unset = UNSET
    #: Top-level keys of ``extra`` to set (``None``: remove), written by the database
    #: into the value the row holds then (:mod:`gateway.jobs.extra_sql`): a writer of
    #: one key never undoes another's. Exclusive with ``extra``.
    extra_keys: Mapping[str, Any] | Unset = UNSET

    def values(self) -> dict[str, Any]:
        """Column name -> new value, for the column fields that are set."""
        return {
            f.name: v
            for f in fields(self)
            if f.name != "extra_keys" and (v := getattr(self, f.name)) is not UNSET
        }

    def is_set(self, name: str) -> bool:
        return getattr(self, name) is not UNSET
