"""Roles in Keycloak's conventions, provisioning checks, public paths, login rules."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import Forbidden
from gateway.identity.auth import (
    ROLE_ADMIN,
    ROLE_USER,
    OidcAuthenticator,
    Principal,
    RoleMapper,
    is_public,
    require_role,
)
from gateway.identity.identity_map import InvalidLogin, LoginRule, PortalUser
from gateway.settings import AuthSettings, IdentityMapSettings, RoleSettings

pytestmark = pytest.mark.unit


class StaticValidator:
    def __init__(self, claims: dict[str, Any]) -> None:
        self.claims = claims

    def validate(self, token: str) -> dict[str, Any]:
        return self.claims


def _auth(claims: dict[str, Any], logins: dict[str, str], **roles: list[str]) -> OidcAuthenticator:
    settings = AuthSettings(mode="oidc", roles=RoleSettings(**roles))
    return OidcAuthenticator(settings, StaticValidator(claims), logins.get)


HDR = {"Authorization": "Bearer abc.def.ghi"}


def test_realm_role_grants_user() -> None:
    mapper = RoleMapper(RoleSettings(), "ogc-gateway")
    assert mapper.roles({"realm_access": {"roles": ["hpc-user", "offline_access"]}}) == {ROLE_USER}


def test_admin_implies_user() -> None:
    mapper = RoleMapper(RoleSettings(), "ogc-gateway")
    assert mapper.roles({"realm_access": {"roles": ["hpc-admin"]}}) == {ROLE_USER, ROLE_ADMIN}


def test_client_roles_and_groups_by_configuration() -> None:
    mapper = RoleMapper(
        RoleSettings(user=["group:/gep/hpc-users", "client:portal:runner"], admin=["ops"]),
        "ogc-gateway",
    )
    assert mapper.roles({"groups": ["/gep/hpc-users"]}) == {ROLE_USER}
    assert mapper.roles({"groups": ["gep/hpc-users"]}) == {ROLE_USER}
    assert mapper.roles({"resource_access": {"portal": {"roles": ["runner"]}}}) == {ROLE_USER}
    # a bare name matches realm roles and roles of the gateway's own client only
    assert mapper.roles({"resource_access": {"ogc-gateway": {"roles": ["ops"]}}}) == {
        ROLE_USER,
        ROLE_ADMIN,
    }
    assert mapper.roles({"resource_access": {"other": {"roles": ["ops"]}}}) == frozenset()
    assert mapper.roles({"realm_access": "garbage", "groups": "nope"}) == frozenset()


def test_no_role_is_forbidden_with_insufficient_scope() -> None:
    auth = _auth(
        {"sub": "s1", "preferred_username": "eve", "realm_access": {"roles": []}}, {"s1": "eve"}
    )
    with pytest.raises(Forbidden) as info:
        auth.authenticate(HDR)
    assert info.value.status == 403
    assert "insufficient_scope" in info.value.headers["WWW-Authenticate"]


def test_unprovisioned_user_is_forbidden_with_a_clear_message() -> None:
    auth = _auth(
        {"sub": "s2", "preferred_username": "carol", "realm_access": {"roles": ["hpc-user"]}}, {}
    )
    with pytest.raises(Forbidden) as info:
        auth.authenticate(HDR)
    assert "not provisioned on the HPC cluster" in info.value.detail


def test_admin_without_mapping_may_read_but_has_no_login() -> None:
    auth = _auth(
        {"sub": "s3", "preferred_username": "admin", "realm_access": {"roles": ["hpc-admin"]}}, {}
    )
    principal = auth.authenticate(HDR)
    assert principal.is_admin and principal.hpc_login is None and principal.visibility is None


def test_username_falls_back_to_sub() -> None:
    auth = _auth({"sub": "s4", "realm_access": {"roles": ["hpc-user"]}}, {"s4": "dave"})
    principal = auth.authenticate(HDR)
    assert principal.username == "s4" and principal.visibility == "s4"


@pytest.mark.parametrize(
    "claims",
    [
        {"azp": "gep-portal", "preferred_username": "service-account-gep-portal"},
        {"azp": "gep-portal", "client_id": "gep-portal", "preferred_username": "x"},
        {"azp": "gep-portal", "clientId": "gep-portal"},
    ],
)
def test_a_clients_service_account_token_cannot_act_as_a_user(claims: dict[str, Any]) -> None:
    token = {"sub": "s-1", "realm_access": {"roles": ["hpc-user"]}, **claims}
    with pytest.raises(Forbidden, match="service-account token of client 'gep-portal'"):
        _auth(token, {"s-1": "gep_x"}).authenticate(HDR)


def test_a_portal_acting_for_a_user_is_recorded_the_gateways_own_client_is_not() -> None:
    claims = {"sub": "u-1", "preferred_username": "alice", "realm_access": {"roles": ["hpc-user"]}}
    via_portal = _auth({**claims, "azp": "gep-portal"}, {"u-1": "alice"}).authenticate(HDR)
    assert via_portal.via_client == "gep-portal" and via_portal.hpc_login == "alice"
    direct = _auth({**claims, "azp": "ogc-gateway"}, {"u-1": "alice"}).authenticate(HDR)
    assert direct.via_client is None


def test_require_role() -> None:
    user = Principal("s", "u", "u", frozenset({ROLE_USER}))
    admin = Principal("a", "a", None, frozenset({ROLE_USER, ROLE_ADMIN}), is_admin=True)
    require_role(admin, ROLE_ADMIN)
    require_role(user, ROLE_USER)
    with pytest.raises(Forbidden):
        require_role(user, ROLE_ADMIN)


@pytest.mark.parametrize(
    ("path", "public"),
    [
        ("/", True),
        ("/conformance", True),
        ("/conformance/", True),
        ("/openapi", True),
        ("/static/css/x.css", True),
        ("/jobs", False),
        ("/processes", False),
        ("/conformance/x", False),
        ("/openapi.json", False),
        ("/staticx", False),
    ],
)
def test_public_paths(path: str, public: bool) -> None:
    assert is_public(path, AuthSettings().public_paths) is public


# -- login rule -----------------------------------------------------------------------------


def _user(username: str, **kw: Any) -> PortalUser:
    return PortalUser(sub="0b7c", username=username, **kw)


def test_template_rule() -> None:
    rule = LoginRule(IdentityMapSettings(rule="gep_{preferred_username}"))
    assert rule.login_for(_user("Carol")) == "gep_carol"


@pytest.mark.parametrize(
    "username",
    [
        "carol smith",
        "carol;rm",
        "carol,account=root",
        "carol=x",
        "-carol",
        "carol$(id)",
        "carol\nx",
        "c" * 40,
        "carol.smith",
        "carol@example.org",
        "",
    ],
)
def test_template_rule_rejects_unsafe_names(username: str) -> None:
    rule = LoginRule(IdentityMapSettings(rule="{preferred_username}"))
    with pytest.raises(InvalidLogin):
        rule.login_for(_user(username))


def test_reserved_logins_are_refused() -> None:
    rule = LoginRule(IdentityMapSettings())
    for name in ("root", "slurm", "hpcgw"):
        with pytest.raises(InvalidLogin):
            rule.login_for(_user(name))


def test_attribute_rule() -> None:
    rule = LoginRule(IdentityMapSettings(rule="attribute:hpc_login"))
    assert rule.login_for(_user("carol", attributes={"hpc_login": ["cj42"]})) == "cj42"
    with pytest.raises(InvalidLogin):
        rule.login_for(_user("carol"))
    with pytest.raises(InvalidLogin):
        rule.login_for(_user("carol", attributes={"hpc_login": ["a", "b"]}))
    with pytest.raises(InvalidLogin):
        rule.login_for(_user("carol", attributes={"hpc_login": ["Root;x"]}))


def test_bad_rules_are_configuration_errors() -> None:
    for bad in ("static", "{nope}", "attribute:"):
        with pytest.raises(ValueError):
            LoginRule(IdentityMapSettings(rule=bad))
