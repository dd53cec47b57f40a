"""The triggers' tables (SQLAlchemy Core, on the job store's metadata; Alembic 0005).

* ``triggers`` -- one stored rule: its owner (the user jobs run as), the rule
  itself (JSON: source, criteria, process, input template, site) and the state
  of its feed (conditional-request validators, when it is next polled, the
  last problem seen).
* ``trigger_activations`` -- one row per event a trigger fired on (or was
  refused for). The unique ``(trigger_id, event_id)`` is what makes a trigger
  fire at most once per event, across restarts and any number of workers; the
  row is written *before* the job is submitted, and the job's id is derived
  from it (see :mod:`gateway.triggers.service`), so a crash between the two
  never yields a second job.
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.jobs.tables import UTCDateTime, metadata

triggers = sa.Table(
    "triggers",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("owner_sub", sa.String(255), nullable=False),
    sa.Column("owner_name", sa.String(255), nullable=False),
    sa.Column("hpc_login", sa.String(64), nullable=False),
    sa.Column("title", sa.String(255), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    #: The rule's ``source.type`` (fdsn-event, stac-search, manual): what the poller reads.
    sa.Column("source", sa.String(16), nullable=False),
    #: The rule as validated (:class:`gateway.triggers.records.TriggerRule`).
    sa.Column("rule", sa.JSON, nullable=False),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("updated", UTCDateTime, nullable=False),
    #: Feed state: validators of the last answer, next poll, last poll and problem.
    sa.Column("etag", sa.String(255)),
    sa.Column("last_modified", sa.String(64)),
    sa.Column("next_poll_at", UTCDateTime),
    sa.Column("last_polled", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Index("ix_triggers_owner_created", "owner_sub", "created"),
    sa.Index("ix_triggers_enabled_next", "enabled", "next_poll_at"),
)

trigger_activations = sa.Table(
    "trigger_activations",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("trigger_id", sa.String(36), nullable=False),
    sa.Column("event_id", sa.String(255), nullable=False),
    #: feed | stac | manual
    sa.Column("kind", sa.String(16), nullable=False),
    #: The event as matched (:class:`gateway.triggers.events.Event`).
    sa.Column("event", sa.JSON, nullable=False),
    #: pending (claimed, job not submitted yet) | submitted | refused
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("job_id", sa.String(36), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("updated", UTCDateTime, nullable=False),
    sa.UniqueConstraint("trigger_id", "event_id"),
    sa.Index("ix_trigger_activations_trigger_created", "trigger_id", "created"),
)
