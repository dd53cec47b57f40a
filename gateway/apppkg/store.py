"""Deployed processes in the job store's database: the registry's :class:`DeployedSource`.

Writes are single transactions; the id is the primary key, so two gateway
instances deploying the same id at once leave one winner and one
:class:`AlreadyDeployed`. A replace or an undeploy changes only
``deployed_processes``: the package rows stay, so jobs accepted earlier still
find the version they recorded (:meth:`DeployedStore.pinned`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gateway.apppkg.tables import deployed_packages, deployed_processes
from processes.package import PackagedDefinition


class AlreadyDeployed(Exception):
    """A process with that id is deployed already."""


class NotDeployed(LookupError):
    """No deployed process has that id (any more)."""


@dataclass(frozen=True)
class Deployment:
    """Who deployed a process, when, and which package version is current."""

    process_id: str
    digest: str
    owner_sub: str
    owner_name: str
    created: datetime
    updated: datetime


def _definition(row: Any) -> PackagedDefinition:
    data = dict(row.definition)
    return PackagedDefinition.model_validate({**data, "package": row.package, "digest": row.digest})


class DeployedStore:
    """Reads and writes deployed processes (package versions are kept forever)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- the registry's DeployedSource --------------------------------------------

    def _current_query(self) -> sa.Select[Any]:
        p, k = deployed_processes, deployed_packages
        return sa.select(k.c.package, k.c.definition, k.c.digest).select_from(
            p.join(k, sa.and_(k.c.process_id == p.c.process_id, k.c.digest == p.c.digest))
        )

    def current(self, process_id: str) -> PackagedDefinition | None:
        query = self._current_query().where(deployed_processes.c.process_id == process_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return _definition(row) if row is not None else None

    def pinned(self, process_id: str, run_version: str) -> PackagedDefinition | None:
        k = deployed_packages
        query = sa.select(k.c.package, k.c.definition, k.c.digest).where(
            k.c.process_id == process_id, k.c.digest.startswith(run_version, autoescape=True)
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return _definition(row) if row is not None else None

    def all(self) -> list[PackagedDefinition]:
        query = self._current_query().order_by(deployed_processes.c.process_id)
        with self._engine.connect() as conn:
            return [_definition(row) for row in conn.execute(query)]

    # -- deployments ------------------------------------------------------------------

    def deployment(self, process_id: str) -> Deployment | None:
        p = deployed_processes
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(p).where(p.c.process_id == process_id)).first()
        if row is None:
            return None
        return Deployment(
            process_id=row.process_id,
            digest=row.digest,
            owner_sub=row.owner_sub,
            owner_name=row.owner_name,
            created=row.created,
            updated=row.updated,
        )

    def deploy(self, definition: PackagedDefinition, owner_sub: str, owner_name: str) -> None:
        """Store a new process; :class:`AlreadyDeployed` if the id is taken."""
        now = datetime.now(UTC)
        try:
            with self._engine.begin() as conn:
                self._keep_package(conn, definition, owner_sub, now)
                conn.execute(
                    sa.insert(deployed_processes).values(
                        process_id=definition.id,
                        digest=definition.digest,
                        owner_sub=owner_sub,
                        owner_name=owner_name,
                        created=now,
                        updated=now,
                    )
                )
        except sa.exc.IntegrityError:
            raise AlreadyDeployed(definition.id) from None

    def replace(self, definition: PackagedDefinition, owner_sub: str) -> None:
        """Make ``definition`` the current version; :class:`NotDeployed` if it was undeployed."""
        now = datetime.now(UTC)
        p = deployed_processes
        with self._engine.begin() as conn:
            self._keep_package(conn, definition, owner_sub, now)
            done = conn.execute(
                sa.update(p)
                .where(p.c.process_id == definition.id)
                .values(digest=definition.digest, updated=now)
            )
            if done.rowcount != 1:
                raise NotDeployed(definition.id)

    def undeploy(self, process_id: str) -> None:
        p = deployed_processes
        with self._engine.begin() as conn:
            done = conn.execute(sa.delete(p).where(p.c.process_id == process_id))
            if done.rowcount != 1:
                raise NotDeployed(process_id)

    @staticmethod
    def _keep_package(
        conn: Connection, definition: PackagedDefinition, owner_sub: str, now: datetime
    ) -> None:
        k = deployed_packages
        exists = conn.execute(
            sa.select(k.c.digest).where(
                k.c.process_id == definition.id, k.c.digest == definition.digest
            )
        ).first()
        if exists is None:
            conn.execute(
                sa.insert(k).values(
                    process_id=definition.id,
                    digest=definition.digest,
                    package=definition.package,
                    definition=definition.model_dump(mode="json", exclude={"package", "digest"}),
                    owner_sub=owner_sub,
                    created=now,
                )
            )
