"""Tables of deployed application packages (OGC API - Processes Part 2).

``deployed_processes`` holds one row per process id a deployer has deployed
(its current package and owner); ``deployed_packages`` holds every package
version ever deployed, keyed by (process id, digest), so a job accepted before
a replace or an undeploy still runs the package it was accepted with. Both
live in the job store's database, so every gateway instance sees the same
processes. Schema changes go through Alembic (``0005_deployed_processes``).
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.jobs.tables import UTCDateTime, metadata

deployed_processes = sa.Table(
    "deployed_processes",
    metadata,
    sa.Column("process_id", sa.String(64), primary_key=True),
    #: sha256 (hex) of the current package; a row of ``deployed_packages``.
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("owner_sub", sa.String(255), nullable=False),
    sa.Column("owner_name", sa.String(255), nullable=False),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("updated", UTCDateTime, nullable=False),
)

deployed_packages = sa.Table(
    "deployed_packages",
    metadata,
    sa.Column("process_id", sa.String(64), primary_key=True),
    sa.Column("digest", sa.String(64), primary_key=True),
    #: The CWL document as deployed (canonical JSON text, self-contained).
    sa.Column("package", sa.Text, nullable=False),
    #: The process definition derived from it (JSON: OGC description + ``hpc``).
    sa.Column("definition", sa.JSON, nullable=False),
    sa.Column("owner_sub", sa.String(255), nullable=False),
    sa.Column("created", UTCDateTime, nullable=False),
)
