"""The gateway's OIDC validation and the admin-API reads against the real Keycloak.

Keycloak 26 of ``deploy/keycloak`` with the ``gep`` realm of
``deploy/keycloak/realm-gep.json``: its discovery document, its token shapes
(audience, groups and ``sun`` mappers, the declared ``hpc_login`` attribute),
its grants, and the admin API as the ``hpcgw-sync`` service account sees it.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from keycloak import KeycloakAdmin, KeycloakOpenIDConnection

from gateway.identity.auth import ROLE_ADMIN, ROLE_USER, RoleMapper
from gateway.identity.oidc import TokenError, TokenValidator
from gateway.settings import KeycloakAdminSettings, OidcSettings, RoleSettings
from gateway.usersync.source import DirectoryError, KeycloakDirectory
from tests.identity_fixtures import SYNC_CLIENT, Keycloak, keycloak, password_token

pytestmark = pytest.mark.integration

__all__ = ["keycloak"]


def _validator(kc: Keycloak, **kw: object) -> TokenValidator:
    return TokenValidator(OidcSettings(issuer=kc.issuer, audience=["ogc-gateway"], **kw))


def test_discovery_and_jwks(keycloak: Keycloak) -> None:
    doc = httpx.get(f"{keycloak.issuer}/.well-known/openid-configuration").json()
    assert doc["issuer"] == keycloak.issuer
    assert doc["jwks_uri"] == f"{keycloak.issuer}/protocol/openid-connect/certs"
    assert doc["token_endpoint"] == keycloak.token_endpoint
    assert "urn:ietf:params:oauth:grant-type:token-exchange" in doc["grant_types_supported"]
    signing = [k for k in keycloak.jwks()["keys"] if k.get("use") == "sig"]
    assert ("RSA", "RS256") in {(k["kty"], k["alg"]) for k in signing}


def test_password_grant_token_validates_with_the_realm_mappers(keycloak: Keycloak) -> None:
    claims = _validator(keycloak).validate(password_token(keycloak, "alice"))
    assert claims["preferred_username"] == "alice"
    assert "ogc-gateway" in (claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]])
    assert claims["sun"] == "alice"  # user attribute hpc_login, kept by the declared profile
    assert claims["groups"] == ["/hpc-users"]
    assert claims["sub"] == keycloak.user_id("alice")
    mapper = RoleMapper(RoleSettings(), "ogc-gateway")
    assert mapper.roles(claims) == {ROLE_USER}
    admin_claims = _validator(keycloak).validate(password_token(keycloak, "admin"))
    assert mapper.roles(admin_claims) == {ROLE_USER, ROLE_ADMIN}


def test_undeclared_attributes_are_dropped_declared_ones_kept(keycloak: Keycloak) -> None:
    """Keycloak 24+ keeps only attributes its user profile declares (hpc_login is declared)."""
    admin = keycloak.admin()
    alice = keycloak.user_id("alice")
    rep = admin.get_user(alice)
    assert rep["attributes"]["hpc_login"] == ["alice"]
    profile = admin.get_realm_users_profile()
    assert "hpc_login" in {a["name"] for a in profile["attributes"]}


def test_token_endpoint_refuses_bad_credentials(keycloak: Keycloak) -> None:
    url = keycloak.token_endpoint
    bad = httpx.post(
        url,
        data={
            "grant_type": "password",
            "client_id": "ogc-gateway",
            "username": "alice",
            "password": "wrong",
        },
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"  # Keycloak: 400
    wrong_secret = httpx.post(
        url,
        data={"grant_type": "client_credentials", "client_id": SYNC_CLIENT, "client_secret": "no"},
    )
    assert wrong_secret.status_code == 401
    public_cc = httpx.post(
        url, data={"grant_type": "client_credentials", "client_id": "ogc-gateway"}
    )
    assert public_cc.status_code in (400, 401)


def test_refresh_grant_and_refresh_token_is_no_access_token(keycloak: Keycloak) -> None:
    first = httpx.post(
        keycloak.token_endpoint,
        data={
            "grant_type": "password",
            "client_id": "ogc-gateway",
            "username": "bob",
            "password": "bob",
            "scope": "openid",
        },
    ).json()
    again = httpx.post(
        keycloak.token_endpoint,
        data={
            "grant_type": "refresh_token",
            "client_id": "ogc-gateway",
            "refresh_token": first["refresh_token"],
        },
    )
    assert again.status_code == 200
    validator = _validator(keycloak)
    assert validator.validate(again.json()["access_token"])["preferred_username"] == "bob"
    with pytest.raises(TokenError):  # a refresh token (HS512, typ Refresh) is refused
        validator.validate(first["refresh_token"])
    with pytest.raises(TokenError, match="'ID' token"):  # so is an ID token (aud ogc-gateway)
        validator.validate(first["id_token"])


def _sync_admin(kc: Keycloak) -> KeycloakAdmin:
    connection = KeycloakOpenIDConnection(
        server_url=kc.url,
        realm_name="gep",
        client_id=SYNC_CLIENT,
        client_secret_key=kc.secret(SYNC_CLIENT),
    )
    return KeycloakAdmin(connection=connection)


def test_sync_service_account_reads_users_and_groups(keycloak: Keycloak) -> None:
    admin = _sync_admin(keycloak)
    assert {"alice", "bob", "admin"} <= {u["username"] for u in admin.get_users()}
    group = admin.get_group_by_path("/hpc-users")
    members = {u["username"] for u in admin.get_group_members(group["id"])}
    assert {"alice", "bob"} <= members and "admin" not in members
    assert admin.get_user_id("alice") == keycloak.user_id("alice")


def test_sync_service_account_cannot_write(keycloak: Keycloak) -> None:
    from keycloak.exceptions import KeycloakError

    with pytest.raises(KeycloakError) as err:
        _sync_admin(keycloak).create_user({"username": "mallory", "enabled": True})
    assert getattr(err.value, "response_code", None) == 403


def test_directory_reads_group_members(keycloak: Keycloak, tmp_path: Path) -> None:
    settings = KeycloakAdminSettings(
        server_url=keycloak.url,
        realm="gep",
        client_id=SYNC_CLIENT,
        client_secret_file=str(keycloak.secret_file(SYNC_CLIENT)),
    )
    members = KeycloakDirectory(settings).members(["/hpc-users"])
    users = {u.username: u for u in members["/hpc-users"]}
    assert {"alice", "bob"} <= set(users)
    assert users["alice"].enabled and users["alice"].sub == keycloak.user_id("alice")
    assert users["alice"].attributes.get("hpc_login") == ["alice"]
    with pytest.raises(DirectoryError, match="does not exist"):
        KeycloakDirectory(settings).members(["/no-such-group"])
    wrong = tmp_path / "secret"
    wrong.write_text("wrong")
    bad = settings.model_copy(update={"client_secret_file": str(wrong)})
    with pytest.raises(DirectoryError):
        KeycloakDirectory(bad).members(["/hpc-users"])


def test_admin_api_needs_realm_management_roles(keycloak: Keycloak) -> None:
    token = password_token(keycloak, "admin")  # a portal admin is not a realm admin
    r = httpx.get(
        f"{keycloak.url}/admin/realms/gep/users", headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 403
    assert httpx.get(f"{keycloak.url}/admin/realms/gep/users").status_code == 401
