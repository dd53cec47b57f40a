"""Signing keys on the real Keycloak: rotation while the gateway runs, and a Keycloak outage.

Rotation adds an ``rsa-generated`` key provider with a higher priority than the
realm's key through the admin API (what an operator does), then removes it.
The outage freezes the Keycloak process group (SIGSTOP) for a few seconds, so
every call to it times out, and thaws it (SIGCONT) in a ``finally``; no restart.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.app import build_services, create_app
from gateway.identity.identity_map import IdentityStatus, IdentityStore
from gateway.identity.oidc import TokenCache, TokenError, TokenValidator
from gateway.settings import KeycloakAdminSettings, OidcSettings
from gateway.usersync.source import DirectoryError, KeycloakDirectory
from tests.conftest import make_settings
from tests.identity_fixtures import (
    SYNC_CLIENT,
    Keycloak,
    claims_for,
    keycloak,
    password_token,
    published_kid,
    remove_key,
)
from tests.polling import eventually

pytestmark = pytest.mark.integration

__all__ = ["keycloak"]


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


@contextmanager
def _rotated_key(kc: Keycloak) -> Iterator[str]:
    """A new generated RS256 key, priority above the realm's own; yields its provider id."""
    admin = kc.admin()
    component_id = str(
        admin.create_component(
            {
                "name": "rotation-test",
                "providerId": "rsa-generated",
                "providerType": "org.keycloak.keys.KeyProvider",
                "parentId": admin.get_realm("gep")["id"],
                "config": {
                    "priority": ["1000"],
                    "enabled": ["true"],
                    "active": ["true"],
                    "algorithm": ["RS256"],
                    "keySize": ["2048"],
                },
            }
        )
    )
    try:
        yield component_id
    finally:
        remove_key(kc, component_id)


def test_rotation_old_and_new_tokens_validate_then_the_removed_key_is_refused(
    keycloak: Keycloak,
) -> None:
    # One validator for the whole test, as in a running gateway; the token cache is
    # off here so every call exercises the key lookup (the cache's own bound is
    # TOKEN_CACHE_SECONDS, documented in docs/identity.md).
    validator = TokenValidator(
        OidcSettings(
            issuer=keycloak.issuer,
            audience=["ogc-gateway"],
            jwks_min_refresh_seconds=0,
            jwks_max_age_seconds=1,
        ),
        cache=TokenCache(ttl_seconds=0),
    )
    old = password_token(keycloak, "alice")
    assert validator.validate(old)["preferred_username"] == "alice"
    with _rotated_key(keycloak) as component_id:
        new = password_token(keycloak, "alice")
        new_kid = published_kid(keycloak, component_id)
        assert _kid(new) == new_kid != _kid(old)  # Keycloak now signs with the new key
        assert validator.validate(new)["preferred_username"] == "alice"
        assert validator.validate(old)["preferred_username"] == "alice"
    # the new key is gone from the realm: once the JWKS is re-read, its tokens are refused
    assert new_kid not in {k["kid"] for k in keycloak.jwks()["keys"]}

    def refused() -> bool:
        try:
            validator.validate(new)
        except TokenError as exc:
            return "unknown key" in str(exc)
        return False

    eventually(refused, 30, "a token of the removed key to be refused")
    assert validator.validate(old)["preferred_username"] == "alice"
    validator.close()


@contextmanager
def _frozen(kc: Keycloak) -> Iterator[None]:
    """Keycloak stopped dead (SIGSTOP on its process group) until the block ends."""
    pidfile = kc.state / "keycloak.pid"
    if not pidfile.exists():
        pytest.fail(f"no {pidfile}: start Keycloak with deploy/keycloak/keycloak.sh")
    pgid = int(pidfile.read_text().strip())
    os.killpg(pgid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(pgid, signal.SIGCONT)


def _app_client(kc: Keycloak, tmp: Any) -> Any:
    auth = {
        "mode": "oidc",
        "oidc": {
            "issuer": kc.issuer,
            "audience": ["ogc-gateway"],
            "jwks_min_refresh_seconds": 0,
            "http_timeout_seconds": 2,
        },
    }
    settings = make_settings(tmp, auth=auth)
    services = build_services(settings)
    IdentityStore(services.engine).save(
        kc.user_id("alice"), "alice", "alice", IdentityStatus.ACTIVE, ["gep"]
    )
    return create_app(settings, services).test_client(), services


def test_keycloak_outage_cached_keys_work_unknown_keys_401_nothing_needs_a_restart(
    keycloak: Keycloak, tmp_path_factory: pytest.TempPathFactory
) -> None:
    running, running_services = _app_client(keycloak, tmp_path_factory.mktemp("running"))
    fresh, fresh_services = _app_client(keycloak, tmp_path_factory.mktemp("fresh"))
    alice = password_token(keycloak, "alice")
    bob = password_token(keycloak, "bob")
    assert running.get("/jobs", headers={"Authorization": f"Bearer {alice}"}).status_code == 200
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    unknown = jwt.encode(
        claims_for(keycloak, keycloak.user_id("alice")), other, "RS256", headers={"kid": "k2"}
    )
    secret_file = str(keycloak.secret_file(SYNC_CLIENT))
    directory = KeycloakDirectory(
        KeycloakAdminSettings(
            server_url=keycloak.url,
            realm="gep",
            client_id=SYNC_CLIENT,
            client_secret_file=secret_file,
            timeout_seconds=2,
        )
    )
    with _frozen(keycloak):
        # keys already cached: a token never seen before (bob's) still validates
        resp = running.get("/jobs", headers={"Authorization": f"Bearer {bob}"})
        assert resp.status_code == 403 and "not provisioned" in resp.get_json()["detail"]
        # a key nobody cached: 401 (the refresh fails, the cached keys stay), never 500
        resp = running.get("/jobs", headers={"Authorization": f"Bearer {unknown}"})
        assert resp.status_code == 401, resp.get_json()
        # a gateway that never read the keys: 503 with the reason, never 500
        resp = fresh.get("/jobs", headers={"Authorization": f"Bearer {alice}"})
        assert resp.status_code == 503, resp.get_json()
        assert "identity provider" in resp.get_json()["detail"]
        # the user sync reports the outage
        with pytest.raises(DirectoryError, match="cannot read users from Keycloak"):
            directory.members(["/hpc-users"])
    # Keycloak is back: the same processes work again, nothing restarted
    assert fresh.get("/jobs", headers={"Authorization": f"Bearer {alice}"}).status_code == 200
    assert len(directory.members(["/hpc-users"])["/hpc-users"]) >= 2
    running_services.close()
    fresh_services.close()
