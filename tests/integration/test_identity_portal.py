"""A portal (``gep-portal``) submits on a signed-in user's behalf, end to end.

Real Keycloak (realm ``gep``), the gateway over real HTTP with a worker, and
the hpcgw dev cluster behind it. alice signs in to the portal (password grant
on the confidential ``gep-portal`` client, standing in for the browser login),
then the portal either (a) forwards her token, or (b) exchanges it for one
meant for the gateway (standard token exchange, RFC 8693). Either way the job
runs in Slurm as alice's HPC login, is in alice's own job list, and records
that it came through ``gep-portal``. The portal's own service-account token
cannot submit as anyone: 403 with the reason.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from gateway.app import build_services, create_app, start_background_worker
from gateway.identity.identity_map import IdentityStatus, IdentityStore
from gateway.services import Services
from tests.conftest import make_settings
from tests.identity_fixtures import (
    PORTAL_CLIENT,
    Keycloak,
    auth_config,
    keycloak,
    password_token,
)
from tests.polling import eventually

pytestmark = pytest.mark.slurm

__all__ = ["keycloak"]

ECHO = {"inputs": {"string_input": "from the portal"}}
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def gateway(
    cluster: str, keycloak: Keycloak, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Services]]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(
        tmp_path_factory.mktemp("portal"),
        server={"base_url": url, "port": port, "sync_timeout_seconds": 90},
        auth=auth_config(keycloak),
    )
    services = build_services(settings)
    IdentityStore(services.engine).save(
        keycloak.user_id("alice"), "alice", "alice", IdentityStatus.ACTIVE, ["gep"]
    )
    server = make_server("127.0.0.1", port, create_app(settings, services), threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    worker, stop = start_background_worker(services)
    yield url, services
    stop.set()
    worker.join(timeout=10)
    server.shutdown()
    services.close()


def _portal_login(kc: Keycloak, username: str) -> str:
    """The user's token as the portal holds it after sign-in (issued to gep-portal)."""
    return password_token(kc, username, client=PORTAL_CLIENT, secret=kc.secret(PORTAL_CLIENT))


def _exchange(kc: Keycloak, subject_token: str) -> httpx.Response:
    return httpx.post(
        kc.token_endpoint,
        data={
            "grant_type": EXCHANGE,
            "client_id": PORTAL_CLIENT,
            "client_secret": kc.secret(PORTAL_CLIENT),
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN,
            "requested_token_type": ACCESS_TOKEN,
            "audience": "ogc-gateway",
        },
        timeout=30,
    )


def _submit(url: str, token: str) -> httpx.Response:
    return httpx.post(
        f"{url}/processes/echo/execution",
        json=ECHO,
        headers={"Authorization": f"Bearer {token}", "Prefer": "respond-async"},
        timeout=30,
    )


def _sacct_user(slurm_id: str) -> str | None:
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", slurm_id, "-o", "User"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    ).stdout.strip()
    return out or None


def _runs_as_alice_and_is_hers(
    url: str, services: Services, job_url: str, alice_own_token: str
) -> None:
    headers = {"Authorization": f"Bearer {alice_own_token}"}

    def final() -> dict[str, Any] | None:
        status = httpx.get(job_url, headers=headers, timeout=30).json()
        return status if status["status"] in ("successful", "failed", "dismissed") else None

    status = eventually(final, 120, f"{job_url} to finish", every=0.5)
    assert status["status"] == "successful", status
    assert status["submittedVia"] == PORTAL_CLIENT
    job_id = job_url.rstrip("/").rsplit("/", 1)[-1]
    listed = httpx.get(f"{url}/jobs?limit=1000", headers=headers, timeout=30).json()["jobs"]
    assert job_id in {j["jobID"] for j in listed}
    job = services.store.get(job_id)
    assert job.owner.hpc_login == "alice" and job.owner.username == "alice"
    assert job.extra["submitted_via"] == {"client": PORTAL_CLIENT}
    user = eventually(
        lambda: _sacct_user(str(status["slurmJobId"])), 60, "the job in Slurm's accounting"
    )
    assert user == "alice"


def _portal_token(kc: Keycloak, how: str) -> str:
    """alice's token as the portal sends it: (a) as signed in, or (b) exchanged."""
    signed_in = _portal_login(kc, "alice")
    if how == "forwarded":
        return signed_in
    exchanged = _exchange(kc, signed_in)
    assert exchanged.status_code == 200, exchanged.text
    return str(exchanged.json()["access_token"])


@pytest.mark.parametrize("how", ["forwarded", "exchanged"])
def test_portal_submits_for_alice(how: str, gateway: Any, keycloak: Keycloak) -> None:
    url, services = gateway
    resp = _submit(url, _portal_token(keycloak, how))
    assert resp.status_code == 201, resp.text
    _runs_as_alice_and_is_hers(
        url, services, resp.headers["Location"], password_token(keycloak, "alice")
    )


def test_a_users_own_token_records_no_portal(gateway: Any, keycloak: Keycloak) -> None:
    url, services = gateway
    resp = _submit(url, password_token(keycloak, "alice"))
    assert resp.status_code == 201, resp.text
    job_id = resp.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    assert "submitted_via" not in services.store.get(job_id).extra


def test_the_portals_own_service_account_token_is_refused(gateway: Any, keycloak: Keycloak) -> None:
    url, _ = gateway
    own = httpx.post(
        keycloak.token_endpoint,
        data={
            "grant_type": "client_credentials",
            "client_id": PORTAL_CLIENT,
            "client_secret": keycloak.secret(PORTAL_CLIENT),
        },
        timeout=30,
    )
    assert own.status_code == 200, own.text
    resp = _submit(url, own.json()["access_token"])
    assert resp.status_code == 403
    detail = resp.json()["detail"]
    assert "service-account token of client 'gep-portal'" in detail
    assert "exchange" in detail
    listed = httpx.get(
        f"{url}/jobs", headers={"Authorization": f"Bearer {own.json()['access_token']}"}
    )
    assert listed.status_code == 403


def test_the_exchange_needs_a_token_meant_for_the_portal(keycloak: Keycloak) -> None:
    """A token alice got from another client cannot be exchanged by the portal."""
    resp = _exchange(keycloak, password_token(keycloak, "alice"))  # issued to ogc-gateway
    assert resp.status_code in (400, 403), resp.text
    assert "access_token" not in resp.json()
