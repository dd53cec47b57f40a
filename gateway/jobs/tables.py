"""SQLAlchemy Core tables of the job store (schema changes go through Alembic).

Indexes follow the queries: the owner's job list (owner_sub, created, id),
the admin job list (created, id), the worker's queues (state, next_attempt_at)
and the monitor's lookup by scheduler job id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops tzinfo)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the job store")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("process_id", sa.String(128), nullable=False),
    sa.Column("process_version", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("owner_sub", sa.String(255), nullable=False),
    sa.Column("owner_name", sa.String(255), nullable=False),
    sa.Column("hpc_login", sa.String(64), nullable=False),
    sa.Column("project", sa.String(64)),
    sa.Column("site", sa.String(64), nullable=False),
    sa.Column("interface", sa.String(16), nullable=False),
    sa.Column("inputs", sa.JSON, nullable=False),
    sa.Column("outputs_request", sa.JSON),
    sa.Column("response", sa.String(16), nullable=False),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("updated", UTCDateTime, nullable=False),
    sa.Column("started", UTCDateTime),
    sa.Column("finished", UTCDateTime),
    sa.Column("progress", sa.Integer),
    sa.Column("message", sa.Text),
    sa.Column("scheduler_job_id", sa.String(64)),
    sa.Column("scheduler_state", sa.String(32)),
    sa.Column("exit_code", sa.Integer),
    sa.Column("workspace", sa.Text),
    sa.Column("results", sa.JSON),
    sa.Column("error", sa.JSON),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UTCDateTime),
    sa.Column("lease_owner", sa.String(128)),
    sa.Column("lease_until", UTCDateTime),
    sa.Column("cancel_pending", sa.Boolean, nullable=False, default=False),
    sa.Column("cleanup_pending", sa.Boolean, nullable=False, default=False),
    sa.Column("quote", sa.JSON),
    sa.Column("subscriber", sa.JSON),
    sa.Column("extra", sa.JSON),
    sa.Index("ix_jobs_owner_created", "owner_sub", "created", "id"),
    sa.Index("ix_jobs_created", "created", "id"),
    sa.Index("ix_jobs_state_next", "state", "next_attempt_at"),
    sa.Index("ix_jobs_site_sched", "site", "scheduler_job_id"),
    sa.Index("ix_jobs_process_created", "process_id", "created"),
)

#: Named, time-limited leases: one worker at a time monitors a site.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("until", UTCDateTime, nullable=False),
)

#: Portal user (identity-provider ``sub``) -> HPC login, written by the user sync.
#: Rows are never deleted: a user who leaves the portal group is ``disabled``.
hpc_identities = sa.Table(
    "hpc_identities",
    metadata,
    sa.Column("sub", sa.String(255), primary_key=True),
    sa.Column("username", sa.String(255), nullable=False),
    sa.Column("hpc_login", sa.String(64), nullable=False, unique=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("accounts", sa.JSON, nullable=False),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("updated", UTCDateTime, nullable=False),
)

#: Every change the user sync makes (or tries to make), one row per step.
usersync_audit = sa.Table(
    "usersync_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("run_id", sa.String(36), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("sub", sa.String(255)),
    sa.Column("hpc_login", sa.String(64)),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("detail", sa.JSON),
    sa.Index("ix_usersync_audit_at", "at"),
    sa.Index("ix_usersync_audit_login", "hpc_login", "at"),
)
