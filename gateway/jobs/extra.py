"""Typed records of what a job keeps in its ``extra`` JSON column.

``extra`` holds what only the workflow needs to remember between cycles. Each
sub-record has a typed form here, read with ``from_dict`` and written back
with ``to_dict`` in the JSON shape the column has always had:

* ``extra["callbacks"][event]`` -- :class:`CallbackRecord`, the delivery state
  of one subscriber notification (:mod:`gateway.workflow.callbacks`);
* ``extra["missing_since"]`` -- :func:`missing_since`, when the scheduler
  first stopped knowing the job (:mod:`gateway.workflow.monitor`);
* ``extra["forward_token"]`` -- :func:`forward_token`, the owner's bearer
  token kept only until submission (slurmrestd *forward* mode);
* ``extra["submitted_via"]`` -- :func:`submitted_via`, the client (a portal such
  as ``gep-portal``) that submitted on the owner's behalf, written at creation.
* ``extra["submission_recovered"]`` -- :class:`Recovery`, set when the job's
  Slurm job was found at the site after a crash and adopted, never cleared
  (:mod:`gateway.workflow.dispatcher`).

The publication record and the staged inputs are still plain dicts built by
:mod:`gateway.publication.footprint` and :mod:`gateway.staging.stager`.

Writers change only their own key, with ``JobUpdate(extra_keys={key: value})``
(``None`` removes it): the database applies it to the value the row holds at
write time (:mod:`gateway.jobs.extra_sql`), so two writers of different keys
never undo each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

CallbackStatus = Literal["delivered", "retrying", "abandoned"]


@dataclass(frozen=True)
class CallbackRecord:
    """Delivery state of one notification (``success``, ``failed`` or ``inProgress``)."""

    status: CallbackStatus | None = None
    #: Failed attempts so far (0 once delivered).
    attempts: int = 0
    #: When the last attempt was made (ISO 8601 text, as stored).
    at: str | None = None
    last_error: str | None = None
    #: ``[progress, message]`` of the last in-progress notification delivered.
    sent: tuple[int | None, str | None] | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> CallbackRecord:
        if not data:
            return cls()
        sent = data.get("sent")
        return cls(
            status=data.get("status"),
            attempts=int(data.get("attempts", 0)),
            at=data.get("at"),
            last_error=data.get("last_error"),
            sent=(sent[0], sent[1]) if isinstance(sent, list | tuple) and len(sent) == 2 else None,
        )

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "status": self.status,
            "attempts": self.attempts,
            "at": self.at,
            "last_error": self.last_error,
        }
        if self.sent is not None:
            doc["sent"] = list(self.sent)
        return doc

    @property
    def last_attempt(self) -> datetime | None:
        return datetime.fromisoformat(self.at) if self.at else None


def callback_records(extra: Mapping[str, Any]) -> dict[str, CallbackRecord]:
    """``extra["callbacks"]`` as typed records, by event."""
    raw = extra.get("callbacks") or {}
    return {event: CallbackRecord.from_dict(record) for event, record in raw.items()}


def callbacks_key(records: Mapping[str, CallbackRecord]) -> dict[str, Any]:
    """The ``callbacks`` key holding ``records`` (for ``JobUpdate(extra_keys=...)``);
    empty when there is nothing to record."""
    if not records:
        return {}
    return {"callbacks": {event: r.to_dict() for event, r in records.items()}}


def missing_since(extra: Mapping[str, Any]) -> datetime | None:
    """When the scheduler first stopped knowing the job, or None."""
    raw = extra.get("missing_since")
    return datetime.fromisoformat(raw) if isinstance(raw, str) else None


def missing_since_key(when: datetime) -> dict[str, Any]:
    """The ``extra`` key recording ``when`` (for ``JobUpdate(extra_keys=...)``)."""
    return {"missing_since": when.isoformat()}


def forward_token(extra: Mapping[str, Any]) -> str | None:
    """The owner's bearer token kept for a forward-mode submission, or None."""
    token = extra.get("forward_token")
    return token if isinstance(token, str) else None


def submitted_via(extra: Mapping[str, Any]) -> str | None:
    """The client (portal) that submitted the job for its owner, or None."""
    record = extra.get("submitted_via")
    client = record.get("client") if isinstance(record, dict) else None
    return client if isinstance(client, str) else None


@dataclass(frozen=True)
class Recovery:
    """The job's Slurm job was submitted before a crash, then found and adopted."""

    slurm_job_id: str
    #: When it was adopted (ISO 8601 text, as stored), and by which worker.
    at: str
    worker: str

    @classmethod
    def of(cls, extra: Mapping[str, Any]) -> Recovery | None:
        raw = extra.get("submission_recovered")
        if not isinstance(raw, Mapping) or not raw.get("slurm_job_id"):
            return None
        return cls(str(raw["slurm_job_id"]), str(raw.get("at", "")), str(raw.get("worker", "")))

    def key(self) -> dict[str, Any]:
        """The ``extra`` key recording it (for ``JobUpdate(extra_keys=...)``)."""
        return {
            "submission_recovered": {
                "slurm_job_id": self.slurm_job_id,
                "at": self.at,
                "worker": self.worker,
            }
        }

    def note(self) -> str:
        """What the job's final message adds, so users and operators see it afterwards."""
        return f" (Slurm job {self.slurm_job_id} was recovered after a restart)"


def recovered_note(extra: Mapping[str, Any]) -> str:
    """:meth:`Recovery.note` of a recovered job, else the empty string."""
    recovery = Recovery.of(extra)
    return recovery.note() if recovery is not None else ""
