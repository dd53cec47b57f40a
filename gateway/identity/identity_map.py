"""Portal user -> HPC login: the rule that derives a login, and the table that keeps it.

The user sync (:mod:`gateway.usersync`) is the only writer: it applies the
configured :class:`LoginRule` to each portal user and records the result in
``hpc_identities`` once the Slurm association exists. Request authentication
only reads it (:meth:`IdentityStore.get`): a signed-in user without an
*active* row is "not provisioned on the cluster".

A login, once mapped, never changes silently: if the rule later yields another
login for the same user, the sync reports a conflict instead (the user's files
and accounting belong to the old login).

Authentication asks for the login of the caller on every request, so
:meth:`IdentityStore.active_login` remembers *active* logins for
:data:`LOGIN_CACHE_SECONDS` (30 s). A user the sync disables is refused at once
by the process that ran the sync (:meth:`IdentityStore.save` forgets the entry
in every store of that engine) and within 30 s by every other API process. A
user not (or no longer) provisioned is never cached: a newly synchronised user
is let in on the next request.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
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
#: How long authentication trusts an active HPC login it has read (seconds).
LOGIN_CACHE_SECONDS = 30.0
#: Most logins remembered per store (least recently used ones are dropped).
LOGIN_CACHE_ENTRIES = 10_000


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


class LoginCache:
    """Active HPC logins by subject, each trusted for ``ttl_seconds``; bounded, thread-safe."""

    def __init__(
        self,
        ttl_seconds: float = LOGIN_CACHE_SECONDS,
        max_entries: int = LOGIN_CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()
        #: Bumped by every forget, so a read racing a save cannot store the stale login.
        self.generation = 0

    def get(self, sub: str) -> str | None:
        """The remembered login of ``sub``, or None (unknown or no longer trusted)."""
        with self._lock:
            entry = self._entries.get(sub)
            if entry is None:
                return None
            if self._clock() >= entry[0]:
                del self._entries[sub]
                return None
            self._entries.move_to_end(sub)
            return entry[1]

    def put(self, sub: str, login: str, generation: int | None = None) -> None:
        """Remember ``login``; with ``generation``, only if nothing was forgotten since."""
        if self._ttl <= 0 or self._max <= 0:
            return
        with self._lock:
            if generation is not None and generation != self.generation:
                return
            self._entries[sub] = (self._clock() + self._ttl, login)
            self._entries.move_to_end(sub)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def forget(self, sub: str) -> None:
        with self._lock:
            self.generation += 1
            self._entries.pop(sub, None)


#: The login caches of the live stores of each engine, so a save forgets in all of them.
_CACHES: weakref.WeakKeyDictionary[Engine, weakref.WeakSet[LoginCache]] = (
    weakref.WeakKeyDictionary()
)
_CACHES_LOCK = threading.Lock()


def _register(engine: Engine, cache: LoginCache) -> None:
    with _CACHES_LOCK:
        _CACHES.setdefault(engine, weakref.WeakSet()).add(cache)


def forget_logins(engine: Engine, *subs: str) -> None:
    """Drop the cached logins of ``subs`` in every store of ``engine`` (after a write)."""
    with _CACHES_LOCK:
        caches = list(_CACHES.get(engine, ()))
    for cache in caches:
        for sub in subs:
            cache.forget(sub)


class IdentityStore:
    """The ``hpc_identities`` table.

    ``login_cache`` keeps :meth:`active_login` answers (see the module
    docstring); ``LoginCache(0)`` turns it off.
    """

    def __init__(self, engine: Engine, login_cache: LoginCache | None = None) -> None:
        self._engine = engine
        self._logins = login_cache if login_cache is not None else LoginCache()
        _register(engine, self._logins)

    def get(self, sub: str) -> HpcIdentity | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(hpc_identities).where(hpc_identities.c.sub == sub)
            ).one_or_none()
        return _record(row) if row is not None else None

    def active_login(self, sub: str) -> str | None:
        """The HPC login of ``sub`` when mapped and active (what authentication asks).

        Active logins are remembered for a while (module docstring); an absent
        or disabled mapping is read again on every call.
        """
        login = self._logins.get(sub)
        if login is not None:
            return login
        generation = self._logins.generation
        record = self.get(sub)
        if record is None or not record.active:
            return None
        self._logins.put(sub, record.hpc_login, generation)
        return record.hpc_login

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
        forget_logins(self._engine, sub)
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
