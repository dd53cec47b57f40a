"""Re-linking an HPC login to a portal account that was re-created in Keycloak.

A login, once mapped, belongs to one identity-provider account (its ``sub``):
the sync never hands ``gep_alice`` to a *new* account that happens to be named
``alice`` (:mod:`.plan` reports "already belongs to portal user 'alice'"), as
that would give a stranger someone's files, jobs and core-hours. But accounts
are re-created for honest reasons -- a realm re-imported, an identity-provider
migration, a development Keycloak reset -- and the person then cannot submit
("not provisioned").

``hpcgw users relink USERNAME`` is the administrator's explicit decision to
move the mapping, and everything the old account owned (jobs, usage records,
deployed processes, triggers), to the account that now carries that username.
It refuses while the old account still exists in Keycloak (that would be two
live people for one login: delete or rename one first), when the new account
already has a login of its own, and when nothing needs moving. It runs in one
database transaction and writes a ``relink`` row to the user-sync audit log.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from gateway.accounting.tables import usage
from gateway.apppkg.tables import deployed_packages, deployed_processes
from gateway.identity.identity_map import PortalUser, forget_logins
from gateway.jobs.tables import hpc_identities, jobs, usersync_audit
from gateway.triggers.tables import triggers

#: Every table whose rows belong to a portal account through ``owner_sub``.
OWNED = (jobs, usage, deployed_processes, deployed_packages, triggers)


class RelinkError(Exception):
    """The relink was refused; nothing was changed."""


class Accounts(Protocol):
    """The identity provider's accounts, by username and by id."""

    def user(self, username: str) -> PortalUser | None: ...

    def exists(self, sub: str) -> bool: ...


@dataclass(frozen=True)
class Relink:
    """What a relink moved (or, in a dry run, would move)."""

    username: str
    hpc_login: str
    old_sub: str
    new_sub: str
    rows: dict[str, int]
    dry_run: bool

    def to_dict(self) -> dict[str, object]:
        """The REST answer (``POST /admin/users/{username}/relink``)."""
        return {
            "username": self.username,
            "hpc_login": self.hpc_login,
            "old_sub": self.old_sub,
            "new_sub": self.new_sub,
            "rows": dict(self.rows),
            "dry_run": self.dry_run,
        }

    def lines(self) -> list[str]:
        verb = "would move" if self.dry_run else "moved"
        owned = ", ".join(f"{table}: {n}" for table, n in self.rows.items() if n)
        return [
            f"{self.username}: HPC login '{self.hpc_login}' {verb} from account "
            f"{self.old_sub} to {self.new_sub}",
            f"  rows: {owned}",
        ]


def relink(
    engine: Engine,
    accounts: Accounts,
    username: str,
    *,
    dry_run: bool = False,
    actor: str = "cli",
) -> Relink:
    """Move ``username``'s HPC login and owned rows to its current Keycloak account."""
    current = accounts.user(username)
    if current is None:
        raise RelinkError(f"Keycloak has no account named '{username}'")
    with engine.begin() as conn:
        old = _mapped(conn, username)
        if old.sub == current.sub:
            raise RelinkError(
                f"'{username}' is already linked to '{old.hpc_login}' (account {old.sub})"
            )
        if accounts.exists(old.sub):
            raise RelinkError(
                f"the account '{old.hpc_login}' is linked to ({old.sub}) still exists in "
                "Keycloak: delete or rename one of the two accounts first"
            )
        taken = conn.execute(
            sa.select(hpc_identities.c.hpc_login).where(hpc_identities.c.sub == current.sub)
        ).scalar_one_or_none()
        if taken is not None:
            raise RelinkError(
                f"the current account of '{username}' already has the HPC login '{taken}'"
            )
        rows = {t.name: _count(conn, t, old.sub) for t in (hpc_identities, *OWNED)}
        done = Relink(username, old.hpc_login, old.sub, current.sub, rows, dry_run)
        if not dry_run:
            _move(conn, done, actor)
    if not dry_run:
        # active_login caches answers per sub: both accounts must be asked afresh
        forget_logins(engine, old.sub, current.sub)
    return done


@dataclass(frozen=True)
class _Mapping:
    sub: str
    hpc_login: str


def _mapped(conn: Connection, username: str) -> _Mapping:
    found = conn.execute(
        sa.select(hpc_identities.c.sub, hpc_identities.c.hpc_login).where(
            hpc_identities.c.username == username
        )
    ).all()
    if not found:
        raise RelinkError(
            f"no HPC login is mapped to a portal user named '{username}' "
            "(`hpcgw users sync` maps new users)"
        )
    if len(found) > 1:
        logins = ", ".join(sorted(row.hpc_login for row in found))
        raise RelinkError(f"several HPC logins ({logins}) were mapped to '{username}'")
    return _Mapping(found[0].sub, found[0].hpc_login)


def _count(conn: Connection, table: sa.Table, sub: str) -> int:
    column = table.c.sub if table is hpc_identities else table.c.owner_sub
    return int(conn.execute(sa.select(sa.func.count()).where(column == sub)).scalar_one())


def _move(conn: Connection, done: Relink, actor: str) -> None:
    """Move every row and write the audit entry, in the caller's transaction."""
    old, new = done.old_sub, done.new_sub
    conn.execute(hpc_identities.update().where(hpc_identities.c.sub == old).values(sub=new))
    for table in OWNED:
        conn.execute(table.update().where(table.c.owner_sub == old).values(owner_sub=new))
    conn.execute(
        usersync_audit.insert().values(
            at=datetime.now(UTC),
            run_id=str(uuid.uuid4()),
            actor=actor,
            action="relink",
            outcome="ok",
            sub=new,
            hpc_login=done.hpc_login,
            detail={"old_sub": old, "username": done.username, "rows": done.rows},
        )
    )
