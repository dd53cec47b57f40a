"""Test fixtures around the real Keycloak of ``deploy/keycloak`` (realm ``gep``).

``make test`` starts Keycloak once before pytest (``deploy/keycloak/keycloak.sh
start``); the session fixture :func:`keycloak` only checks that it answers, and
starts it the same way when a test run is begun by hand. Import the fixtures a
module needs, e.g. ``from tests.identity_fixtures import keycloak  # noqa: F401``.

Tests that add users, groups or keys to the shared realm remove them again
(:func:`fresh_user` deletes a leftover of the same name first, so an interrupted
run does not poison the next).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from keycloak import KeycloakAdmin, KeycloakOpenIDConnection

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "deploy" / "keycloak" / "keycloak.sh"
REALM = "gep"
SYNC_CLIENT = "hpcgw-sync"
PORTAL_CLIENT = "gep-portal"
GATEWAY_CLIENT = "ogc-gateway"


@dataclass(frozen=True)
class Keycloak:
    """A running Keycloak with the ``gep`` realm, and the dev secrets its script generated."""

    url: str
    state: Path

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/{REALM}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/token"

    def secret(self, name: str) -> str:
        """A generated dev secret: ``hpcgw-sync``, ``gep-portal`` or ``admin`` (master admin)."""
        file = "admin.password" if name == "admin" else f"{name}.secret"
        return (self.state / file).read_text(encoding="utf-8").strip()

    def secret_file(self, client: str) -> Path:
        return self.state / f"{client}.secret"

    def admin(self) -> KeycloakAdmin:
        """The realm's admin API as the master realm's bootstrap admin (test set-up only)."""
        connection = KeycloakOpenIDConnection(
            server_url=self.url,
            username="hpcgw-admin",
            password=self.secret("admin"),
            realm_name=REALM,
            user_realm_name="master",
            client_id="admin-cli",
            timeout=300,  # a realm import of thousands of users on a loaded machine
        )
        return KeycloakAdmin(connection=connection)

    def jwks(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.issuer}/protocol/openid-connect/certs", timeout=10).json())

    def user_id(self, username: str) -> str:
        return str(self.admin().get_user_id(username))


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/realms/{REALM}", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def keycloak() -> Keycloak:
    """The running Keycloak (started by ``make test``, or here if it is not up yet)."""
    url = os.environ.get("HPCGW_KEYCLOAK_URL", "http://127.0.0.1:8180")
    state = Path(os.environ.get("KC_STATE", REPO / "var" / "keycloak"))
    if not _answers(url):
        done = subprocess.run(["bash", str(SCRIPT), "start"], check=False, timeout=900)
        if done.returncode != 0 or not _answers(url):
            pytest.fail(f"Keycloak is not running at {url} and could not be started ({SCRIPT})")
    return Keycloak(url, state)


def password_token(
    kc: Keycloak,
    username: str,
    password: str | None = None,
    *,
    client: str = GATEWAY_CLIENT,
    secret: str | None = None,
) -> str:
    """An access token from the token endpoint (password grant)."""
    data = {
        "grant_type": "password",
        "client_id": client,
        "username": username,
        "password": password or username,
    }
    if secret is not None:
        data["client_secret"] = secret
    response = httpx.post(kc.token_endpoint, data=data, timeout=30)
    response.raise_for_status()
    return str(response.json()["access_token"])


def fresh_user(
    kc: Keycloak,
    username: str,
    *,
    roles: tuple[str, ...] = (),
    groups: tuple[str, ...] = (),
    attributes: dict[str, list[str]] | None = None,
) -> str:
    """Create ``username`` (password = name), replacing a leftover; returns its id."""
    admin = kc.admin()
    old = admin.get_user_id(username)
    if old:
        admin.delete_user(old)
    user_id = str(
        admin.create_user(
            {
                "username": username,
                "enabled": True,
                "email": f"{username.lower()}@example.org",
                "emailVerified": True,
                "firstName": username.split(".")[0].capitalize(),
                "lastName": "Test",
                "attributes": attributes or {},
                "credentials": [{"type": "password", "value": username, "temporary": False}],
                "groups": list(groups),
            }
        )
    )
    if roles:
        admin.assign_realm_roles(user_id, [admin.get_realm_role(r) for r in roles])
    return user_id


def delete_users(kc: Keycloak, *usernames: str) -> None:
    admin = kc.admin()
    for name in usernames:
        user_id = admin.get_user_id(name)
        if user_id:
            admin.delete_user(user_id)


def fresh_group(kc: Keycloak, path: str) -> None:
    """Create the top-level group ``path`` (e.g. ``/gep-test``), replacing a leftover."""
    delete_group(kc, path)
    kc.admin().create_group({"name": path.lstrip("/")})


def delete_group(kc: Keycloak, path: str) -> None:
    """Delete the group at ``path`` if it exists."""
    admin = kc.admin()
    for group in admin.get_groups({"search": path.lstrip("/")}):
        if group.get("path") == path:
            admin.delete_group(group["id"])


def auth_config(kc: Keycloak, **extra: Any) -> dict[str, Any]:
    """The ``auth`` settings section for a gateway trusting ``kc``."""
    return {"mode": "oidc", "oidc": {"issuer": kc.issuer, "audience": [GATEWAY_CLIENT]}, **extra}


def usersync_config(kc: Keycloak, **extra: Any) -> dict[str, Any]:
    """The ``usersync`` settings section reading ``kc``'s admin API as ``hpcgw-sync``."""
    return {
        "keycloak": {
            "server_url": kc.url,
            "realm": REALM,
            "client_id": SYNC_CLIENT,
            "client_secret_file": str(kc.secret_file(SYNC_CLIENT)),
        },
        **extra,
    }


# -- a test key that Keycloak really publishes ---------------------------------------


@dataclass(frozen=True)
class ImportedKey:
    """An RSA key imported into the realm (an ``rsa`` key provider), private half kept here.

    Keycloak publishes it in its JWKS but, at a lower priority than the realm's own
    key, never signs with it; tests sign claims Keycloak would never issue (expired,
    not yet valid, another audience) with a key the gateway rightly trusts.
    """

    kid: str
    private_key: rsa.RSAPrivateKey
    component_id: str

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.private_key, "RS256", headers={"kid": self.kid})


def import_rsa_key(kc: Keycloak, name: str, priority: int) -> ImportedKey:
    """Add an ``rsa`` key provider holding a fresh key; remove it with :func:`remove_key`."""
    admin = kc.admin()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    realm_id = admin.get_realm(REALM)["id"]
    component_id = admin.create_component(
        {
            "name": name,
            "providerId": "rsa",
            "providerType": "org.keycloak.keys.KeyProvider",
            "parentId": realm_id,
            "config": {
                "priority": [str(priority)],
                "enabled": ["true"],
                "active": ["true"],
                "algorithm": ["RS256"],
                "privateKey": [pem],
            },
        }
    )
    return ImportedKey(published_kid(kc, component_id), key, str(component_id))


def published_kid(kc: Keycloak, component_id: str) -> str:
    """The ``kid`` under which the key of provider ``component_id`` is published."""
    keys = kc.admin().get_keys()["keys"]
    return next(str(k["kid"]) for k in keys if k.get("providerId") == component_id)


def remove_key(kc: Keycloak, component_id: str) -> None:
    kc.admin().delete_component(component_id)


@pytest.fixture(scope="session")
def imported_key(keycloak: Keycloak) -> Iterator[ImportedKey]:
    key = import_rsa_key(keycloak, f"hpcgw-test-{uuid.uuid4().hex[:8]}", priority=1)
    yield key
    remove_key(keycloak, key.component_id)


def claims_for(kc: Keycloak, sub: str, **overrides: Any) -> dict[str, Any]:
    """Claims shaped like a Keycloak access token of the ``ogc-gateway`` client."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": kc.issuer,
        "aud": [GATEWAY_CLIENT],
        "sub": sub,
        "typ": "Bearer",
        "azp": GATEWAY_CLIENT,
        "iat": now,
        "exp": now + 300,
        "preferred_username": "alice",
        "realm_access": {"roles": ["hpc-user"]},
    }
    base.update(overrides)
    return base
