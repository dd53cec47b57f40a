"""Portal user -> HPC login: the rule that derives a login, and the table that keeps it.

The user sync (:mod:`gateway.usersync`) is the only writer: it applies the
configured :class:`LoginRule` to each portal user and records the result in
``hpc_identities`` once the Slurm association exists. Request authentication
only reads it (:meth:`IdentityStore.get`): a signed-in user without an
*active* row is "not provisioned on the cluster".

A login, once mapped, never changes silently: if the rule later yields another
login for the same user, the sync reports a conflict instead (the user's files
and accounting belong to the old login).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.jobs.tables import hpc_identities
from gateway.settings import IdentityMapSettings

_FIELD = re.compile(r"\{([a-z_]+)\}")
_TEMPLATE_FIELDS = frozenset({"preferred_username", "username", "sub", "email_local"})
#: Every login must also pass this fixed check (the configured pattern may only narrow it):
#: no separators, quotes, ``=``, ``,``, spaces or leading ``-`` can reach sacctmgr or useradd.
SAFE_LOGIN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
#: Slurm account / cluster names accepted by the sync (sacctmgr syntax-safe).
SLURM_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class InvalidLogin(ValueError):
    """The rule yields no acceptable HPC login for this user."""


class IdentityStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


@dataclass(frozen=True)
class PortalUser:
    """A user as the identity provider's admin API describes them."""

    sub: str
    username: str
    enabled: bool = True
    email: str | None = None
    attributes: Mapping[str, Sequence[str]] = field(default_factory=dict)
    #: Group paths (``/hpc-users``) the user is a member of.
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True)
class HpcIdentity:
    """One row of ``hpc_identities``."""

    sub: str
    username: str
    hpc_login: str
    status: IdentityStatus
    accounts: tuple[str, ...]
    created: datetime
    updated: datetime

    @property
    def active(self) -> bool:
        return self.status is IdentityStatus.ACTIVE


class LoginRule:
    """Derives the HPC login of a portal user from the configured rule."""

    def __init__(self, settings: IdentityMapSettings) -> None:
        self.rule = settings.rule.strip()
        self._pattern = re.compile(settings.login_pattern)
        self._reserved = frozenset(settings.reserved_logins)
        self._attribute: str | None = None
        if self.rule.startswith("attribute:"):
            self._attribute = self.rule.removeprefix("attribute:").strip()
            if not self._attribute:
                raise ValueError("identity rule 'attribute:' needs an attribute name")
        else:
            unknown = set(_FIELD.findall(self.rule)) - _TEMPLATE_FIELDS
            if unknown or not _FIELD.search(self.rule):
                raise ValueError(
                    f"identity rule {self.rule!r}: use fields from {sorted(_TEMPLATE_FIELDS)} "
                    "or 'attribute:NAME'"
                )

    def login_for(self, user: PortalUser) -> str:
        """The login for ``user``; raises InvalidLogin when it is missing or unsafe."""
        if self._attribute is not None:
            values = [v for v in user.attributes.get(self._attribute, ()) if v]
            if len(values) != 1:
                raise InvalidLogin(
                    f"user '{user.username}' has {len(values)} values for attribute "
                    f"'{self._attribute}' (exactly one is needed)"
                )
            return self.validate(values[0])
        fields = {
            "preferred_username": user.username,
            "username": user.username,
            "sub": user.sub,
            "email_local": (user.email or "").partition("@")[0],
        }
        return self.validate(_FIELD.sub(lambda m: fields[m.group(1)], self.rule).lower())

    def validate(self, login: str) -> str:
        """``login`` if it is a safe, non-reserved unix/Slurm user name."""
        if not SAFE_LOGIN.fullmatch(login) or not self._pattern.fullmatch(login):
            raise InvalidLogin(f"'{login}' is not an acceptable HPC login")
        if login in self._reserved:
            raise InvalidLogin(f"'{login}' is a reserved login")
        return login


class IdentityStore:
    """The ``hpc_identities`` table."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, sub: str) -> HpcIdentity | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(hpc_identities).where(hpc_identities.c.sub == sub)
            ).one_or_none()
        return _record(row) if row is not None else None

    def active_login(self, sub: str) -> str | None:
        """The HPC login of ``sub`` when mapped and active (what authentication asks)."""
        record = self.get(sub)
        return record.hpc_login if record is not None and record.active else None

    def all(self) -> list[HpcIdentity]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(hpc_identities).order_by(hpc_identities.c.hpc_login))
            return [_record(row) for row in rows]

    def save(
        self,
        sub: str,
        username: str,
        hpc_login: str,
        status: IdentityStatus,
        accounts: Sequence[str],
    ) -> HpcIdentity:
        """Insert or update the row of ``sub`` (the login of an existing row is kept)."""
        now = datetime.now(UTC)
        values = {
            "username": username,
            "status": status.value,
            "accounts": sorted(accounts),
            "updated": now,
        }
        with self._engine.begin() as conn:
            existing = conn.execute(
                sa.select(hpc_identities.c.hpc_login).where(hpc_identities.c.sub == sub)
            ).one_or_none()
            if existing is None:
                conn.execute(
                    hpc_identities.insert().values(
                        sub=sub, hpc_login=hpc_login, created=now, **values
                    )
                )
            else:
                if existing.hpc_login != hpc_login:
                    raise InvalidLogin(
                        f"user '{username}' is mapped to '{existing.hpc_login}', not '{hpc_login}'"
                    )
                conn.execute(
                    hpc_identities.update().where(hpc_identities.c.sub == sub).values(**values)
                )
        record = self.get(sub)
        assert record is not None
        return record


def _record(row: sa.Row[tuple[object, ...]]) -> HpcIdentity:
    m = row._mapping
    return HpcIdentity(
        sub=m["sub"],
        username=m["username"],
        hpc_login=m["hpc_login"],
        status=IdentityStatus(m["status"]),
        accounts=tuple(m["accounts"] or ()),
        created=m["created"],
        updated=m["updated"],
    )
