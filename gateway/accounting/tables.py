"""Accounting tables (SQLAlchemy Core, on the job store's metadata; Alembic 0003).

* ``accounting_usage`` -- one row per finished Slurm job, as Slurm accounting
  reports it: ``cpu_seconds`` is ``CPUTimeRAW`` (allocated CPUs x elapsed) and
  ``core_hours`` is ``cpu_seconds / 3600``. Linked to the job, its owner, the
  Slurm account (project), the process and the site. Indexed for the period
  sums of budget checks and reports.
* ``accounting_usage_pending`` -- jobs whose final accounting record has not
  been read yet (slurmdbd lags the job's end): retried with backoff, survives
  restarts.
* ``accounting_budgets`` -- core-hour limits per user or project and period.
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.jobs.tables import UTCDateTime, metadata

usage = sa.Table(
    "accounting_usage",
    metadata,
    sa.Column("job_id", sa.String(36), sa.ForeignKey("jobs.id"), primary_key=True),
    sa.Column("site", sa.String(64), nullable=False),
    sa.Column("scheduler_job_id", sa.String(64), nullable=False),
    sa.Column("process_id", sa.String(128), nullable=False),
    sa.Column("owner_sub", sa.String(255), nullable=False),
    sa.Column("username", sa.String(255), nullable=False),
    #: The Slurm user the job ran as.
    sa.Column("hpc_login", sa.String(64), nullable=False),
    #: The Slurm account charged.
    sa.Column("project", sa.String(64), nullable=False),
    sa.Column("partition", sa.String(64)),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("exit_code", sa.Integer),
    sa.Column("alloc_cpus", sa.Integer, nullable=False),
    sa.Column("elapsed_seconds", sa.Integer, nullable=False),
    sa.Column("cpu_seconds", sa.BigInteger, nullable=False),
    sa.Column("core_hours", sa.Float, nullable=False),
    sa.Column("total_cpu_seconds", sa.Float),
    sa.Column("billing", sa.Integer),
    sa.Column("max_rss_bytes", sa.BigInteger),
    #: Slurm's start - submit (None when the job never started).
    sa.Column("queue_wait_seconds", sa.Float),
    sa.Column("submit_time", UTCDateTime),
    sa.Column("start_time", UTCDateTime),
    sa.Column("end_time", UTCDateTime, nullable=False),
    sa.Column("quoted_core_hours", sa.Float),
    sa.Column("quoted_cost", sa.Float),
    sa.Column("cost", sa.Float, nullable=False),
    sa.Column("currency", sa.String(8), nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.Index("ix_accounting_usage_end", "end_time"),
    sa.Index("ix_accounting_usage_login_end", "hpc_login", "end_time"),
    sa.Index("ix_accounting_usage_project_end", "project", "end_time"),
    sa.Index("ix_accounting_usage_process_end", "process_id", "site", "end_time"),
)

usage_pending = sa.Table(
    "accounting_usage_pending",
    metadata,
    sa.Column("job_id", sa.String(36), sa.ForeignKey("jobs.id"), primary_key=True),
    sa.Column("site", sa.String(64), nullable=False),
    sa.Column("scheduler_job_id", sa.String(64), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Index("ix_accounting_usage_pending_next", "next_attempt_at"),
)

budgets = sa.Table(
    "accounting_budgets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    #: ``user`` (name = HPC login) or ``project`` (name = Slurm account); name ``*``
    #: applies to every user/project without a budget of their own for that period.
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("period", sa.String(16), nullable=False),
    sa.Column("limit_core_hours", sa.Float, nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("updated", UTCDateTime, nullable=False),
    sa.Column("updated_by", sa.String(255), nullable=False),
    #: The site whose usage the budget counts; ``*``: every site.
    sa.Column("site", sa.String(64), nullable=False, server_default="*"),
    sa.UniqueConstraint("scope", "name", "period", "site"),
)
