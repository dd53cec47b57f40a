"""Routing's table (SQLAlchemy Core, on the job store's metadata; Alembic 0004).

* ``site_health`` -- the latest health probe of each site (:mod:`.health`).
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.jobs.tables import UTCDateTime, metadata

site_health = sa.Table(
    "site_health",
    metadata,
    sa.Column("site", sa.String(64), primary_key=True),
    sa.Column("up", sa.Boolean, nullable=False),
    sa.Column("latency_seconds", sa.Float, nullable=True),
    sa.Column("checked_at", UTCDateTime(timezone=True), nullable=False),
    #: When the site last changed from up to down or back.
    sa.Column("since", UTCDateTime(timezone=True), nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
)
