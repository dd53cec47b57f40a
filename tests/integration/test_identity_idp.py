"""The gateway's OIDC validation and Keycloak admin reads against the dev identity provider.

Real HTTP to the Keycloak-compatible stand-in (deploy/idp), run in-process.
"""

from __future__ import annotations

import httpx
import pytest
from keycloak import KeycloakAdmin, KeycloakOpenIDConnection

from deploy.idp.realm import SigningKey
from deploy.idp.server import IdpServer
from gateway.identity.auth import ROLE_ADMIN, ROLE_USER, RoleMapper
from gateway.identity.oidc import TokenError, TokenValidator
from gateway.settings import KeycloakAdminSettings, OidcSettings, RoleSettings
from gateway.usersync.source import DirectoryError, KeycloakDirectory
from tests.identity_fixtures import SYNC_CLIENT, SYNC_SECRET, idp, password_token

pytestmark = pytest.mark.integration

__all__ = ["idp"]


def _validator(server: IdpServer, **kw: object) -> TokenValidator:
    return TokenValidator(OidcSettings(issuer=server.issuer, audience=["ogc-gateway"], **kw))


def test_discovery_and_jwks_follow_keycloak_paths(idp: IdpServer) -> None:
    doc = httpx.get(f"{idp.issuer}/.well-known/openid-configuration").json()
    assert doc["issuer"] == idp.issuer
    assert doc["jwks_uri"] == f"{idp.issuer}/protocol/openid-connect/certs"
    assert doc["token_endpoint"] == f"{idp.issuer}/protocol/openid-connect/token"
    keys = httpx.get(doc["jwks_uri"]).json()["keys"]
    assert [(k["kty"], k["alg"], k["use"]) for k in keys] == [("RSA", "RS256", "sig")]


def test_password_grant_token_validates_with_keycloak_claims(idp: IdpServer) -> None:
    claims = _validator(idp).validate(password_token(idp, "alice"))
    assert claims["preferred_username"] == "alice"
    assert claims["sun"] == "alice"  # Slurm 22.05 auth/jwt user-name claim
    assert claims["groups"] == ["/hpc-users"]
    assert claims["sub"] == idp.realm.user_by_name("alice").id
    mapper = RoleMapper(RoleSettings(), "ogc-gateway")
    assert mapper.roles(claims) == {ROLE_USER}
    admin_claims = _validator(idp).validate(password_token(idp, "admin"))
    assert mapper.roles(admin_claims) == {ROLE_USER, ROLE_ADMIN}


def test_token_endpoint_refuses_bad_credentials(idp: IdpServer) -> None:
    url = f"{idp.issuer}/protocol/openid-connect/token"
    bad = httpx.post(
        url,
        data={
            "grant_type": "password",
            "client_id": "ogc-gateway",
            "username": "alice",
            "password": "wrong",
        },
    )
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_grant"
    wrong_secret = httpx.post(
        url,
        data={
            "grant_type": "client_credentials",
            "client_id": SYNC_CLIENT,
            "client_secret": "nope",
        },
    )
    assert wrong_secret.status_code == 401
    public_cc = httpx.post(
        url, data={"grant_type": "client_credentials", "client_id": "ogc-gateway"}
    )
    assert public_cc.status_code in (400, 401)


def test_refresh_grant(idp: IdpServer) -> None:
    url = f"{idp.issuer}/protocol/openid-connect/token"
    first = httpx.post(
        url,
        data={
            "grant_type": "password",
            "client_id": "ogc-gateway",
            "username": "bob",
            "password": "bob",
        },
    ).json()
    again = httpx.post(
        url,
        data={
            "grant_type": "refresh_token",
            "client_id": "ogc-gateway",
            "refresh_token": first["refresh_token"],
        },
    )
    assert again.status_code == 200
    assert _validator(idp).validate(again.json()["access_token"])["preferred_username"] == "bob"
    with pytest.raises(TokenError):  # a refresh token is not an access token
        _validator(idp).validate(first["refresh_token"])


def test_key_rotation_is_picked_up(idp: IdpServer) -> None:
    validator = _validator(idp, jwks_min_refresh_seconds=0)
    validator.validate(password_token(idp, "alice"))
    old = idp.realm.key
    idp.realm.key = SigningKey.generate()
    try:
        assert validator.validate(password_token(idp, "alice"))["sub"]
        assert validator.jwks.fetches == 2
    finally:
        idp.realm.key = old


def test_python_keycloak_admin_reads_users_and_groups(idp: IdpServer) -> None:
    connection = KeycloakOpenIDConnection(
        server_url=idp.url, realm_name="gep", client_id=SYNC_CLIENT, client_secret_key=SYNC_SECRET
    )
    admin = KeycloakAdmin(connection=connection)
    assert {u["username"] for u in admin.get_users()} == {"alice", "bob", "admin"}
    group = admin.get_group_by_path("/hpc-users")
    assert {u["username"] for u in admin.get_group_members(group["id"])} == {"alice", "bob"}
    assert admin.get_user_id("alice") == idp.realm.user_by_name("alice").id


def test_directory_reads_group_members(idp: IdpServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "secret"
    secret.write_text(SYNC_SECRET)
    settings = KeycloakAdminSettings(
        server_url=idp.url, realm="gep", client_id=SYNC_CLIENT, client_secret_file=str(secret)
    )
    members = KeycloakDirectory(settings).members(["/hpc-users"])
    assert sorted(u.username for u in members["/hpc-users"]) == ["alice", "bob"]
    assert all(u.enabled and u.sub for u in members["/hpc-users"])
    with pytest.raises(DirectoryError, match="does not exist"):
        KeycloakDirectory(settings).members(["/no-such-group"])
    secret.write_text("wrong")
    with pytest.raises(DirectoryError):
        KeycloakDirectory(settings).members(["/hpc-users"])


def test_admin_api_needs_realm_management_roles(idp: IdpServer) -> None:
    token = password_token(idp, "admin")  # a portal admin is not a realm admin
    r = httpx.get(f"{idp.url}/admin/realms/gep/users", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403
    assert httpx.get(f"{idp.url}/admin/realms/gep/users").status_code == 401
