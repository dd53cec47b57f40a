"""The browser-session table (SQLAlchemy Core, on the job store's metadata; Alembic 0005).

* ``browser_sessions`` -- one row per browser session (:mod:`.sessions`): the
  SHA-256 of the cookie's random id (the id itself is never stored), the tokens
  and the CSRF token as JSON, and when the session ends.
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.jobs.tables import UTCDateTime, metadata

browser_sessions = sa.Table(
    "browser_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("created", UTCDateTime(timezone=True), nullable=False),
    sa.Column("expires", UTCDateTime(timezone=True), nullable=False, index=True),
)
