"""Reading portal users and groups from Keycloak's admin REST API (python-keycloak).

The sync authenticates as a *service-account* client (client-credentials
grant) that holds the ``realm-management`` roles ``view-users`` and
``query-groups``; no user password is involved. Only the members of the
configured groups are read: one group lookup per configured path, then the
paged member lists (python-keycloak pages by 100) of that group **and of every
group below it**, as in Keycloak a sub-group's members are members of its
parents. A user found in several of those groups counts once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from gateway.identity.identity_map import PortalUser
from gateway.settings import KeycloakAdminSettings

_NO_DEFAULT = object()


class DirectoryError(Exception):
    """The identity provider cannot be read, or a configured group does not exist."""


class Directory(Protocol):
    """Where portal users come from: group path -> members."""

    def members(self, group_paths: Sequence[str]) -> Mapping[str, list[PortalUser]]: ...


def portal_user(rep: Mapping[str, Any], groups: frozenset[str] = frozenset()) -> PortalUser:
    """A Keycloak UserRepresentation as a :class:`PortalUser`."""
    attributes = rep.get("attributes") or {}
    return PortalUser(
        sub=str(rep["id"]),
        username=str(rep.get("username", "")),
        enabled=bool(rep.get("enabled", True)),
        email=rep.get("email"),
        attributes={
            str(k): [str(x) for x in (v if isinstance(v, list) else [v])]
            for k, v in attributes.items()
        },
        groups=groups,
    )


class KeycloakDirectory:
    """Group members of one realm through python-keycloak's ``KeycloakAdmin``."""

    def __init__(self, settings: KeycloakAdminSettings, admin: Any | None = None) -> None:
        self._settings = settings
        self._admin = admin

    def _client(self) -> Any:
        if self._admin is None:
            from keycloak import KeycloakAdmin, KeycloakOpenIDConnection

            s = self._settings
            if not s.client_secret_file:
                raise DirectoryError("usersync.keycloak.client_secret_file is not set")
            try:
                secret = Path(s.client_secret_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise DirectoryError(f"cannot read the client secret file: {exc}") from exc
            connection = KeycloakOpenIDConnection(
                server_url=s.server_url,
                realm_name=s.realm,
                client_id=s.client_id,
                client_secret_key=secret,
                grant_type="client_credentials",
                verify=s.verify_tls,
                timeout=s.timeout_seconds,
            )
            self._admin = KeycloakAdmin(connection=connection)
        return self._admin

    def members(self, group_paths: Sequence[str]) -> dict[str, list[PortalUser]]:
        from keycloak.exceptions import KeycloakError
        from requests.exceptions import RequestException

        result: dict[str, list[PortalUser]] = {}
        try:
            admin = self._client()
            for path in group_paths:
                try:
                    group = admin.get_group_by_path(path)
                except KeycloakError as exc:
                    if getattr(exc, "response_code", None) == 404:
                        raise DirectoryError(f"Keycloak group '{path}' does not exist") from exc
                    raise
                members: dict[str, Mapping[str, Any]] = {}
                for group_id in _subtree(admin, group):
                    for rep in admin.get_group_members(group_id):
                        members.setdefault(str(rep["id"]), rep)
                result[path] = [portal_user(rep, frozenset({path})) for rep in members.values()]
        except (KeycloakError, RequestException) as exc:
            raise DirectoryError(f"cannot read users from Keycloak: {exc}") from exc
        return result

    def user(self, username: str) -> PortalUser | None:
        """The account named ``username`` (exact match), or None."""
        found = self._ask(lambda admin: admin.get_users({"username": username, "exact": True}))
        return next((portal_user(r) for r in found if r.get("username") == username), None)

    def exists(self, sub: str) -> bool:
        """Whether the account with id ``sub`` exists."""
        return self._ask(lambda admin: admin.get_user(sub), absent=None) is not None

    def _ask(self, call: Any, absent: Any = _NO_DEFAULT) -> Any:
        """``call(admin)``; a 404 from Keycloak gives ``absent`` when one is given."""
        from keycloak.exceptions import KeycloakError
        from requests.exceptions import RequestException

        try:
            return call(self._client())
        except KeycloakError as exc:
            if absent is not _NO_DEFAULT and getattr(exc, "response_code", None) == 404:
                return absent
            raise DirectoryError(f"cannot read users from Keycloak: {exc}") from exc
        except RequestException as exc:
            raise DirectoryError(f"cannot read users from Keycloak: {exc}") from exc


def _subtree(admin: Any, group: Mapping[str, Any]) -> list[str]:
    """The id of ``group`` and of all groups below it (children read page by page).

    Children are only asked for where Keycloak's ``subGroupCount`` says there are some.
    """
    ids: list[str] = []
    pending = [group]
    while pending:
        current = pending.pop()
        ids.append(str(current["id"]))
        if current.get("subGroupCount", 1):
            pending.extend(admin.get_group_children(str(current["id"])))
    return ids
