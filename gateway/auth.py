"""Who is asking: the Principal resolved once per request.

The foundation ships the ``none`` mode (every request is the configured
default user, never root); the identity work adds OIDC bearer tokens behind
the same :class:`Authenticator` seam. Everything downstream only sees a
:class:`Principal`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from gateway.jobs.records import Owner
from gateway.settings import AuthSettings


@dataclass(frozen=True)
class Principal:
    """An authenticated caller and what they may do."""

    sub: str
    username: str
    hpc_login: str | None
    roles: frozenset[str] = field(default_factory=frozenset)
    is_admin: bool = False
    #: The caller's own bearer token, kept for slurmrestd *forward* mode.
    token: str | None = None

    def owner(self) -> Owner:
        """The job owner record; callers must check ``hpc_login`` first."""
        if not self.hpc_login:
            raise ValueError("principal has no HPC login")
        return Owner(sub=self.sub, username=self.username, hpc_login=self.hpc_login)

    @property
    def visibility(self) -> str | None:
        """Owner filter for job queries: None means every job (admins)."""
        return None if self.is_admin else self.sub


class Authenticator(Protocol):
    """Turns request headers into a Principal, or raises Unauthorized/Forbidden."""

    def authenticate(self, headers: Mapping[str, str]) -> Principal: ...


class NoAuth:
    """Authentication off: every request acts as the configured default user."""

    def __init__(self, settings: AuthSettings) -> None:
        user = settings.default_user
        self._principal = Principal(
            sub=user.sub,
            username=user.username,
            hpc_login=user.hpc_login,
            roles=frozenset({"hpc-user"}),
        )

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        return self._principal
