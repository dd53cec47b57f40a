"""The OGC API with OIDC on: 401/403 rules, per-user isolation (404 on every route), admins.

The gateway app runs in-process (Flask test client) trusting the real Keycloak of
``deploy/keycloak`` (realm ``gep``); jobs are only stored (no worker), so no
cluster is needed. ``carol`` (role, no HPC account) and ``eve`` (no role) are
created in the realm for this module and deleted afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from gateway.app import build_services, create_app
from gateway.identity.identity_map import IdentityStatus, IdentityStore
from gateway.services import Services
from tests.conftest import make_settings
from tests.identity_fixtures import (
    Keycloak,
    auth_config,
    delete_users,
    fresh_user,
    keycloak,
    password_token,
)

pytestmark = pytest.mark.integration

__all__ = ["keycloak"]

ECHO = {"inputs": {"string_input": "hello"}}


@pytest.fixture(scope="module")
def gateway(
    keycloak: Keycloak, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FlaskClient, Services]]:
    tmp = tmp_path_factory.mktemp("identity-http")
    settings = make_settings(tmp, auth=auth_config(keycloak))
    services = build_services(settings)
    identities = IdentityStore(services.engine)
    for name in ("alice", "bob"):
        identities.save(keycloak.user_id(name), name, name, IdentityStatus.ACTIVE, ["gep"])
    fresh_user(keycloak, "carol", roles=("hpc-user",))
    fresh_user(keycloak, "eve")
    app = create_app(settings, services)
    yield app.test_client(), services
    services.close()
    delete_users(keycloak, "carol", "eve")


@pytest.fixture(scope="module")
def tokens(keycloak: Keycloak, gateway: Any) -> dict[str, str]:
    return {
        name: password_token(keycloak, name) for name in ("alice", "bob", "admin", "carol", "eve")
    }


def _h(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def _submit(client: FlaskClient, token: str) -> str:
    resp = client.post(
        "/processes/echo/execution", json=ECHO, headers=_h(token, Prefer="respond-async")
    )
    assert resp.status_code == 201, resp.get_json()
    return str(resp.headers["Location"]).rstrip("/").rsplit("/", 1)[-1]


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/conformance",
        "/openapi",
        # discovery, public by default (auth.public_discovery)
        "/processes",
        "/processes/echo",
        "/processes/echo?f=html",
        "/wps?service=WPS&request=GetCapabilities",
        "/wps?service=WPS&version=1.0.0&request=DescribeProcess&identifier=echo",
        "/wps?service=WPS&version=2.0.0&request=DescribeProcess&identifier=echo",
    ],
)
def test_public_paths_need_no_token(gateway: Any, path: str) -> None:
    client, _ = gateway
    assert client.get(path, headers={"Accept": "application/json"}).status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "service=WPS&version=2.0.0&request=GetStatus&jobId=00000000-0000-0000-0000-000000000000",
        "service=WPS&version=2.0.0&request=Dismiss&jobId=00000000-0000-0000-0000-000000000000",
        "service=WPS&version=1.0.0&request=Execute&identifier=echo&DataInputs=string_input=x",
    ],
)
def test_wps_job_operations_still_need_a_token(gateway: Any, query: str) -> None:
    client, _ = gateway
    resp = client.get(f"/wps?{query}")
    assert resp.status_code == 401 and resp.mimetype == "text/xml"
    assert b"exceptionCode=" in resp.data
    assert resp.headers["WWW-Authenticate"].startswith("Bearer realm=")


def test_discovery_can_be_made_private(keycloak: Keycloak, tmp_path: Path, tokens: Any) -> None:
    settings = make_settings(tmp_path, auth=auth_config(keycloak, public_discovery=False))
    services = build_services(settings)
    try:
        client = create_app(settings, services).test_client()
        for path in ("/processes", "/processes/echo", "/wps?service=WPS&request=GetCapabilities"):
            assert client.get(path).status_code == 401, path
        # (admin: this fresh store has no HPC logins, and admins need none)
        assert client.get("/processes", headers=_h(tokens["admin"])).status_code == 200
        assert client.get("/").status_code == 200  # the landing page stays public
    finally:
        services.close()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/jobs"),
        ("POST", "/processes/echo/execution"),
        ("GET", "/jobs/00000000-0000-0000-0000-000000000000"),
        ("GET", "/admin/users"),
    ],
)
def test_protected_paths_answer_401_without_token(gateway: Any, method: str, path: str) -> None:
    client, _ = gateway
    resp = client.open(path, method=method, json=ECHO if method == "POST" else None)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer realm=")
    doc = resp.get_json()
    assert doc["status"] == 401 and doc["type"].endswith("/unauthorized")


def test_invalid_token_answers_401_invalid_token(gateway: Any, tokens: dict[str, str]) -> None:
    client, _ = gateway
    head, body, _sig = tokens["alice"].split(".")
    resp = client.get("/jobs", headers=_h(f"{head}.{body}.AAAA"))
    assert resp.status_code == 401
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


def test_unprovisioned_user_gets_403(gateway: Any, tokens: dict[str, str]) -> None:
    client, _ = gateway
    resp = client.get("/jobs", headers=_h(tokens["carol"]))
    assert resp.status_code == 403
    assert "not provisioned" in resp.get_json()["detail"]


def test_user_without_role_gets_403(gateway: Any, tokens: dict[str, str]) -> None:
    client, _ = gateway
    resp = client.get("/jobs", headers=_h(tokens["eve"]))
    assert resp.status_code == 403
    assert resp.get_json()["type"].endswith("/forbidden")


def test_jobs_record_owner_and_hpc_login(
    gateway: Any, tokens: dict[str, str], keycloak: Keycloak
) -> None:
    client, services = gateway
    job = services.store.get(_submit(client, tokens["alice"]))
    assert job.owner.sub == keycloak.user_id("alice")
    assert (job.owner.username, job.owner.hpc_login) == ("alice", "alice")


def test_other_users_job_is_404_on_every_route(gateway: Any, tokens: dict[str, str]) -> None:
    client, _ = gateway
    job_id = _submit(client, tokens["alice"])
    bob = _h(tokens["bob"])
    for method, path in [
        ("GET", f"/jobs/{job_id}"),
        ("GET", f"/jobs/{job_id}/results"),
        ("GET", f"/jobs/{job_id}/outputs/string_output"),
        ("DELETE", f"/jobs/{job_id}"),
    ]:
        resp = client.open(path, method=method, headers=bob)
        assert resp.status_code == 404, (method, path, resp.get_json())
        assert resp.get_json()["type"].endswith("/no-such-job") or resp.status_code == 404
    listed = client.get("/jobs?limit=1000", headers=bob).get_json()["jobs"]
    assert job_id not in {j["jobID"] for j in listed}
    # still there, untouched, for its owner
    assert client.get(f"/jobs/{job_id}", headers=_h(tokens["alice"])).get_json()["status"] == (
        "accepted"
    )


def test_admin_sees_every_job(gateway: Any, tokens: dict[str, str]) -> None:
    client, _ = gateway
    a = _submit(client, tokens["alice"])
    b = _submit(client, tokens["bob"])
    admin = _h(tokens["admin"])
    listed = {j["jobID"] for j in client.get("/jobs?limit=1000", headers=admin).get_json()["jobs"]}
    assert {a, b} <= listed
    assert client.get(f"/jobs/{a}", headers=admin).status_code == 200
    alice_list = client.get("/jobs?limit=1000", headers=_h(tokens["alice"])).get_json()["jobs"]
    assert b not in {j["jobID"] for j in alice_list}


def test_admin_without_hpc_account_cannot_execute(gateway: Any, tokens: dict[str, str]) -> None:
    client, _ = gateway
    resp = client.post(
        "/processes/echo/execution", json=ECHO, headers=_h(tokens["admin"], Prefer="respond-async")
    )
    assert resp.status_code == 403
    assert "not provisioned" in resp.get_json()["detail"]


def test_owner_can_dismiss(gateway: Any, tokens: dict[str, str]) -> None:
    client, _ = gateway
    job_id = _submit(client, tokens["bob"])
    resp = client.delete(f"/jobs/{job_id}", headers=_h(tokens["bob"]))
    assert resp.status_code == 200 and resp.get_json()["status"] == "dismissed"


def test_admin_endpoints_need_the_admin_role(gateway: Any, tokens: dict[str, str]) -> None:
    client, _ = gateway
    assert client.get("/admin/users", headers=_h(tokens["alice"])).status_code == 403
    assert (
        client.post("/admin/users/sync?dryRun=true", headers=_h(tokens["bob"])).status_code == 403
    )
    listed = client.get("/admin/users", headers=_h(tokens["admin"]))
    assert listed.status_code == 200
    assert {m["hpc_login"] for m in listed.get_json()} == {"alice", "bob"}
    assert client.get("/admin/users/audit", headers=_h(tokens["admin"])).status_code == 200


def test_disabled_mapping_is_not_provisioned(
    gateway: Any, tokens: dict[str, str], keycloak: Keycloak
) -> None:
    client, services = gateway
    store = IdentityStore(services.engine)
    bob = keycloak.user_id("bob")
    store.save(bob, "bob", "bob", IdentityStatus.DISABLED, [])
    try:
        resp = client.get("/jobs", headers=_h(tokens["bob"]))
        assert resp.status_code == 403 and "not provisioned" in resp.get_json()["detail"]
    finally:
        store.save(bob, "bob", "bob", IdentityStatus.ACTIVE, ["gep"])
