"""Who is asking: the Principal resolved once per request.

Two :class:`Authenticator` implementations sit behind one seam:

* :class:`NoAuth` (``auth.mode: none``, development): every request is the
  configured default user, never root;
* :class:`OidcAuthenticator` (``auth.mode: oidc``): an OIDC bearer token
  (validated by :mod:`gateway.identity.oidc`), roles in Keycloak's conventions mapped to
  the gateway's two roles, and the HPC login from the identity table written by
  the user sync (:mod:`gateway.identity.identity_map`).

Errors: :class:`~gateway.errors.Unauthorized` (401, with ``WWW-Authenticate``)
for a missing or invalid token; :class:`~gateway.errors.Forbidden` (403) for a
valid token without a gateway role, or a non-admin user who is not provisioned
on the cluster; :class:`~gateway.errors.ServiceUnavailable` (503) when the
identity provider's keys cannot be read. Everything downstream only sees a
:class:`Principal`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from gateway.errors import Forbidden, ServiceUnavailable, Unauthorized
from gateway.jobs.records import Owner
from gateway.settings import AuthSettings, RoleSettings

#: The gateway's own role names (what :attr:`Principal.roles` holds).
ROLE_USER = "hpc-user"
ROLE_ADMIN = "hpc-admin"
ROLE_DEPLOYER = "hpc-deployer"


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
    #: The OAuth client that obtained the token on the user's behalf (a portal such as
    #: ``gep-portal``: its ``azp``), when that is not the gateway's own client.
    via_client: str | None = None

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
            roles=frozenset({ROLE_USER}),
        )

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        return self._principal


# -- public paths ---------------------------------------------------------------


def is_public(path: str, public_paths: Iterable[str]) -> bool:
    """True when ``path`` is served without a token.

    Entries are exact paths (a trailing ``/`` on the request is ignored), except
    entries ending in ``/`` (other than ``/`` itself), which are prefixes.
    """
    trimmed = path.rstrip("/") or "/"
    for entry in public_paths:
        if entry.endswith("/") and entry != "/":
            if path.startswith(entry):
                return True
        elif trimmed == (entry.rstrip("/") or "/"):
            return True
    return False


# -- roles ----------------------------------------------------------------------


class RoleMapper:
    """Maps Keycloak-style claims to the gateway roles, as configured.

    Reads ``realm_access.roles``, ``resource_access.<client>.roles`` and
    ``groups`` (paths, with or without the leading ``/``).
    """

    def __init__(self, settings: RoleSettings, client_id: str) -> None:
        self._client_id = client_id
        self._rules = {
            ROLE_USER: list(settings.user),
            ROLE_ADMIN: list(settings.admin),
            ROLE_DEPLOYER: list(settings.deployer),
        }

    def roles(self, claims: Mapping[str, Any]) -> frozenset[str]:
        realm = set(_strings(_dig(claims, "realm_access", "roles")))
        access = claims.get("resource_access")
        clients: dict[str, set[str]] = {}
        if isinstance(access, dict):
            for client, entry in access.items():
                if isinstance(entry, dict):
                    clients[str(client)] = set(_strings(entry.get("roles")))
        groups = {"/" + g.lstrip("/") for g in _strings(claims.get("groups"))}
        granted = {
            role
            for role, entries in self._rules.items()
            if any(self._matches(e, realm, clients, groups) for e in entries)
        }
        if ROLE_ADMIN in granted:
            granted.add(ROLE_USER)
        return frozenset(granted)

    def _matches(
        self, entry: str, realm: set[str], clients: dict[str, set[str]], groups: set[str]
    ) -> bool:
        kind, _, rest = entry.partition(":")
        if not rest:
            return entry in realm or entry in clients.get(self._client_id, set())
        if kind == "realm":
            return rest in realm
        if kind == "group":
            return "/" + rest.lstrip("/") in groups
        if kind == "client":
            client, _, role = rest.partition(":")
            return role in clients.get(client, set())
        return False


def _dig(claims: Mapping[str, Any], *keys: str) -> Any:
    value: Any = claims
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


# -- bearer tokens --------------------------------------------------------------

_BEARER = re.compile(r"^Bearer +([A-Za-z0-9\-._~+/]+=*) *$", re.IGNORECASE)


def bearer_token(headers: Mapping[str, str], realm: str = "ogc-hpc-gateway") -> str:
    """The token of an ``Authorization: Bearer`` header, or Unauthorized."""
    value = headers.get("Authorization")
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    if not value:
        raise Unauthorized(
            "this resource needs a bearer token (Authorization: Bearer <access token>)",
            headers={"WWW-Authenticate": f'Bearer realm="{realm}"'},
        )
    match = _BEARER.match(value)
    if match is None:
        raise invalid_token("the Authorization header is not a bearer token", realm)
    return match.group(1)


def invalid_token(detail: str, realm: str = "ogc-hpc-gateway") -> Unauthorized:
    """401 with an RFC 6750 ``invalid_token`` challenge."""
    description = detail.replace('"', "'").replace("\\", "/")
    return Unauthorized(
        detail,
        headers={
            "WWW-Authenticate": (
                f'Bearer realm="{realm}", error="invalid_token", error_description="{description}"'
            )
        },
    )


class ClaimsValidator(Protocol):
    """What :class:`OidcAuthenticator` needs from :class:`gateway.identity.oidc.TokenValidator`."""

    def validate(self, token: str) -> dict[str, Any]: ...


class OidcAuthenticator:
    """OIDC bearer tokens -> Principal (roles from claims, HPC login from the DB)."""

    realm = "ogc-hpc-gateway"

    def __init__(
        self,
        settings: AuthSettings,
        validator: ClaimsValidator,
        hpc_login_of: Callable[[str], str | None],
    ) -> None:
        self._validator = validator
        self._hpc_login_of = hpc_login_of
        self._roles = RoleMapper(settings.roles, settings.oidc.client_id)
        self._client_id = settings.oidc.client_id
        self._username_claim = settings.oidc.username_claim

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        from gateway.identity.oidc import ProviderUnavailable, TokenError

        token = bearer_token(headers, self.realm)
        try:
            claims = self._validator.validate(token)
        except TokenError as exc:
            raise invalid_token(str(exc), self.realm) from None
        except ProviderUnavailable as exc:
            raise ServiceUnavailable(
                f"the identity provider cannot be reached to check the token: {exc}"
            ) from None
        sub = str(claims["sub"])
        username = claims.get(self._username_claim)
        username = username if isinstance(username, str) and username else sub
        client = service_account_client(claims)
        if client is not None:
            raise Forbidden(
                f"this is the service-account token of client '{client}', not a user's: "
                "a client cannot act as a user with its own token; send the signed-in "
                "user's access token, or exchange it for one (OAuth 2.0 token exchange)",
                headers={
                    "WWW-Authenticate": f'Bearer realm="{self.realm}", error="insufficient_scope"'
                },
            )
        roles = self._roles.roles(claims)
        if not roles:
            raise Forbidden(
                f"user '{username}' has no role that grants access to this service "
                "(ask for the HPC user role in the portal)",
                headers={
                    "WWW-Authenticate": f'Bearer realm="{self.realm}", error="insufficient_scope"'
                },
            )
        is_admin = ROLE_ADMIN in roles
        hpc_login = self._hpc_login_of(sub)
        if hpc_login is None and not is_admin:
            raise not_provisioned(username)
        azp = claims.get("azp")
        return Principal(
            sub=sub,
            username=username,
            hpc_login=hpc_login,
            roles=roles,
            is_admin=is_admin,
            token=token,
            via_client=azp if isinstance(azp, str) and azp and azp != self._client_id else None,
        )


def service_account_client(claims: Mapping[str, Any]) -> str | None:
    """The client whose *service account* this token belongs to, or None for a user's token.

    Keycloak issues client-credentials tokens to the user ``service-account-<clientId>``
    and, with its ``service_account`` scope, adds a ``client_id`` (older: ``clientId``)
    claim; either sign is enough.
    """
    for name in ("client_id", "clientId"):
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    azp = claims.get("azp")
    username = claims.get("preferred_username")
    if isinstance(azp, str) and username == f"service-account-{azp}":
        return azp
    return None


def not_provisioned(username: str) -> Forbidden:
    return Forbidden(
        f"user '{username}' is not provisioned on the HPC cluster; "
        "ask the HPC centre to synchronise your account"
    )


def require_role(principal: Principal, role: str) -> None:
    """Forbidden unless ``principal`` holds ``role`` (e.g. ROLE_ADMIN for admin endpoints)."""
    if role == ROLE_ADMIN and principal.is_admin:
        return
    if role not in principal.roles:
        raise Forbidden(f"this action needs the '{role}' role")


def build_authenticator(settings: AuthSettings, engine: Engine) -> Authenticator:
    """The authenticator ``auth.mode`` asks for (called by the composition root)."""
    if settings.mode == "none":
        return NoAuth(settings)
    from gateway.identity.identity_map import IdentityStore
    from gateway.identity.oidc import TokenValidator

    return OidcAuthenticator(
        settings, TokenValidator(settings.oidc), IdentityStore(engine).active_login
    )
