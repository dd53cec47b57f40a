"""``hpcgw users relink``: a Keycloak account re-created under the same name gets its
HPC login, jobs and audit trail back -- only by an administrator's explicit command,
and never while the old account still exists.

Real Keycloak (realm ``gep``, a test-only user), the real CLI, the gateway's HTTP API
(Flask test client, bearer tokens from Keycloak); the job is accepted and never run
(no worker), so only the mapping and ownership are exercised.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from flask.testing import FlaskClient
from typer.testing import CliRunner

from gateway.app import build_services, create_app
from gateway.cli import app as cli_app
from gateway.identity.identity_map import IdentityStatus, IdentityStore
from gateway.jobs.tables import usersync_audit
from gateway.services import Services
from tests.conftest import make_settings
from tests.identity_fixtures import (
    Keycloak,
    auth_config,
    delete_users,
    fresh_user,
    keycloak,
    password_token,
    usersync_config,
)

pytestmark = pytest.mark.slurm

__all__ = ["keycloak"]

USER, LOGIN = "relink.tester", "alice"  # a login that exists on the dev cluster
RENAMED = "relink.tester.old"


@dataclass
class Gateway:
    client: FlaskClient
    services: Services
    config: Path
    kc: Keycloak

    def relink(self, *args: str) -> tuple[int, str]:
        argv = ["users", "relink", USER, "--config", str(self.config), *args]
        result = CliRunner().invoke(cli_app, argv)
        return result.exit_code, result.output

    def status(self, job_id: str) -> int:
        token = password_token(self.kc, USER)
        resp = self.client.get(f"/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"})
        return resp.status_code


@pytest.fixture
def gw(keycloak: Keycloak, tmp_path: Path) -> Iterator[Gateway]:
    sections = {"auth": auth_config(keycloak), "usersync": usersync_config(keycloak)}
    settings = make_settings(tmp_path, **sections)
    config = tmp_path / "hpcgw.yaml"
    config.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    services = build_services(settings)
    try:
        yield Gateway(create_app(settings, services).test_client(), services, config, keycloak)
    finally:
        services.close()
        delete_users(keycloak, USER, RENAMED)


def _submit(gw: Gateway, username: str) -> str:
    token = password_token(gw.kc, username)
    resp = gw.client.post(
        "/processes/echo/execution",
        json={"inputs": {"string_input": "before the reset"}},
        headers={"Authorization": f"Bearer {token}", "Prefer": "respond-async"},
    )
    assert resp.status_code == 201, resp.get_json()
    return str(resp.headers["Location"]).rstrip("/").rsplit("/", 1)[-1]


def test_a_recreated_account_gets_its_login_and_jobs_back_only_by_relink(
    gw: Gateway, keycloak: Keycloak
) -> None:
    # the account the login was mapped to -- since renamed (this realm does not let the
    # admin API rename users, so it is created under its later name; the mapping row
    # still carries the name the sync last saw)
    old = fresh_user(keycloak, RENAMED, roles=("hpc-user",))
    identities = IdentityStore(gw.services.engine)
    identities.save(old, USER, LOGIN, IdentityStatus.ACTIVE, ["gep"])
    job_id = _submit(gw, RENAMED)

    new = fresh_user(keycloak, USER, roles=("hpc-user",))  # a new account under the name
    assert gw.status(job_id) == 403  # the new account is not provisioned: refused
    code, out = gw.relink()  # two live people for one login: refused
    assert code == 1 and "still exists in Keycloak" in out, out

    delete_users(keycloak, RENAMED)  # the old account is gone for good
    code, out = gw.relink("--dry-run")
    assert code == 0 and "would move" in out and "jobs: 1" in out, out
    assert identities.get(old) is not None and identities.get(new) is None

    code, out = gw.relink()
    assert code == 0 and f"HPC login '{LOGIN}' moved" in out, out
    moved = identities.get(new)
    assert moved is not None and moved.hpc_login == LOGIN and identities.get(old) is None
    assert gw.status(job_id) == 200  # the old job is the new account's
    with gw.services.engine.connect() as conn:
        audit = conn.execute(
            sa.select(usersync_audit).where(usersync_audit.c.action == "relink")
        ).one()
    assert audit.sub == new and audit.detail["old_sub"] == old and audit.outcome == "ok"

    code, out = gw.relink()
    assert code == 1 and "already linked" in out, out  # done once, and only once


def test_relink_of_an_unknown_or_unmapped_user_is_refused(gw: Gateway, keycloak: Keycloak) -> None:
    code, out = gw.relink()
    assert code == 1 and "no account named" in out, out
    fresh_user(keycloak, USER, roles=("hpc-user",))
    code, out = gw.relink()
    assert code == 1 and "no HPC login is mapped" in out, out


def test_an_admin_relinks_over_http(gw: Gateway, keycloak: Keycloak) -> None:
    old = fresh_user(keycloak, RENAMED, roles=("hpc-user",))
    identities = IdentityStore(gw.services.engine)
    identities.save(old, USER, LOGIN, IdentityStatus.ACTIVE, ["gep"])
    new = fresh_user(keycloak, USER, roles=("hpc-user",))
    url = f"/admin/users/{USER}/relink"

    def post(who: str, query: str = "") -> tuple[int, dict[str, object]]:
        token = password_token(keycloak, who)
        resp = gw.client.post(url + query, headers={"Authorization": f"Bearer {token}"})
        return resp.status_code, resp.get_json()

    assert post(USER)[0] == 403  # not an admin (and not provisioned)
    code, body = post("admin")
    assert code == 409 and "still exists in Keycloak" in str(body["detail"]), body
    delete_users(keycloak, RENAMED)
    code, body = post("admin", "?dryRun=true")
    assert code == 200 and body["dry_run"] is True and body["new_sub"] == new, body
    assert identities.get(new) is None
    code, body = post("admin")
    assert code == 200 and body["rows"] == {"hpc_identities": 1, "jobs": 0, **_NONE}, body
    moved = identities.get(new)
    assert moved is not None and moved.hpc_login == LOGIN


_NONE = {"accounting_usage": 0, "deployed_processes": 0, "deployed_packages": 0, "triggers": 0}
