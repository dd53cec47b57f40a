"""Test fixtures around the development identity provider (deploy/idp), run in-process.

Import the fixtures a test module needs, e.g.
``from tests.identity_fixtures import idp  # noqa: F401``. Each server gets a
free port, a fresh realm from ``deploy/idp/realm-gep.json`` (ephemeral RS256 key)
and a known secret for the ``hpcgw-sync`` service-account client.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.idp.server import IdpServer, load_realm

REPO = Path(__file__).resolve().parent.parent
REALM_FILE = REPO / "deploy" / "idp" / "realm-gep.json"
SYNC_CLIENT = "hpcgw-sync"
SYNC_SECRET = "test-sync-secret"


def start_idp() -> IdpServer:
    realm = load_realm(REALM_FILE, None)
    realm.clients[SYNC_CLIENT].secret = SYNC_SECRET
    return IdpServer(realm).start()


@pytest.fixture(scope="module")
def idp() -> Iterator[IdpServer]:
    server = start_idp()
    yield server
    server.stop()


def password_token(server: IdpServer, username: str, password: str | None = None) -> str:
    """An access token from the token endpoint (password grant, public client)."""
    response = httpx.post(
        f"{server.issuer}/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": "ogc-gateway",
            "username": username,
            "password": password or username,
        },
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def auth_config(server: IdpServer, **extra: Any) -> dict[str, Any]:
    """The ``auth`` settings section for a gateway trusting ``server``."""
    return {"mode": "oidc", "oidc": {"issuer": server.issuer, "audience": ["ogc-gateway"]}, **extra}


def usersync_config(server: IdpServer, secret_file: Path, **extra: Any) -> dict[str, Any]:
    """The ``usersync`` settings section reading ``server``'s admin API."""
    secret_file.write_text(SYNC_SECRET)
    return {
        "keycloak": {
            "server_url": server.url,
            "realm": server.realm.name,
            "client_id": SYNC_CLIENT,
            "client_secret_file": str(secret_file),
        },
        **extra,
    }
