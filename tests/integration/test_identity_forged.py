"""Forged and out-of-bounds tokens against the real Keycloak's published keys: always 401.

The gateway app runs in-process (Flask test client) trusting the ``gep`` realm.
Claims Keycloak would never issue (expired, not yet valid, another audience or
issuer) are signed with a key the realm really publishes: an RSA key imported
into the realm for this session (``imported_key``, lower priority than the
realm's own key, so Keycloak itself never signs with it). The controls prove
that the same key and claims are accepted when nothing is wrong, so each 401
is for the stated reason and not for an unknown key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask.testing import FlaskClient
from jwt.algorithms import RSAAlgorithm

from gateway.app import build_services, create_app
from gateway.identity.identity_map import IdentityStatus, IdentityStore
from tests.conftest import make_settings
from tests.identity_fixtures import (
    ImportedKey,
    Keycloak,
    auth_config,
    claims_for,
    imported_key,
    keycloak,
    password_token,
)

pytestmark = pytest.mark.integration

__all__ = ["imported_key", "keycloak"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _handmade(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None = None) -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    if secret is None:
        return f"{head}.{body}."
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


@pytest.fixture(scope="module")
def gateway(keycloak: Keycloak, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlaskClient]:
    settings = make_settings(tmp_path_factory.mktemp("forged"), auth=auth_config(keycloak))
    services = build_services(settings)
    IdentityStore(services.engine).save(
        keycloak.user_id("alice"), "alice", "alice", IdentityStatus.ACTIVE, ["gep"]
    )
    yield create_app(settings, services).test_client()
    services.close()


@pytest.fixture(scope="module")
def realm_key(keycloak: Keycloak) -> dict[str, Any]:
    """The realm's own signing key as published (kid and public JWK)."""
    token = password_token(keycloak, "alice")
    kid = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["kid"]
    return next(k for k in keycloak.jwks()["keys"] if k["kid"] == kid)


def _get_jobs(client: FlaskClient, token: str) -> Any:
    return client.get("/jobs", headers={"Authorization": f"Bearer {token}"})


def test_controls_are_accepted(
    gateway: FlaskClient, keycloak: Keycloak, imported_key: ImportedKey
) -> None:
    assert _get_jobs(gateway, password_token(keycloak, "alice")).status_code == 200
    alice = keycloak.user_id("alice")
    assert _get_jobs(gateway, imported_key.sign(claims_for(keycloak, alice))).status_code == 200


def _cases(
    kc: Keycloak, key: ImportedKey, realm_key: dict[str, Any]
) -> dict[str, Callable[[], str]]:
    alice = kc.user_id("alice")
    now = int(time.time())
    good = claims_for(kc, alice)
    public = RSAAlgorithm.from_jwk(json.dumps(realm_key))
    assert isinstance(public, rsa.RSAPublicKey)
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    import jwt

    def tampered() -> str:
        head, _body, sig = password_token(kc, "alice").split(".")
        forged = {**good, "realm_access": {"roles": ["hpc-admin"]}}
        return f"{head}.{_b64(json.dumps(forged).encode())}.{sig}"

    return {
        "alg none, the realm's kid": lambda: _handmade(
            {"alg": "none", "kid": realm_key["kid"]}, good
        ),
        "HS256 keyed with the realm's public key": lambda: _handmade(
            {"alg": "HS256", "typ": "JWT", "kid": realm_key["kid"]}, good, pem
        ),
        "wrong audience": lambda: key.sign({**good, "aud": ["account"]}),
        "wrong issuer": lambda: key.sign({**good, "iss": f"{kc.url}/realms/master"}),
        "expired": lambda: key.sign({**good, "iat": now - 900, "exp": now - 600}),
        "not yet valid": lambda: key.sign({**good, "nbf": now + 600, "exp": now + 900}),
        "unknown kid": lambda: jwt.encode(good, other, "RS256", headers={"kid": "not-published"}),
        "the realm's kid, another key": lambda: jwt.encode(
            good, other, "RS256", headers={"kid": realm_key["kid"]}
        ),
        "tampered payload of a real token": tampered,
    }


CASES = [
    "alg none, the realm's kid",
    "HS256 keyed with the realm's public key",
    "wrong audience",
    "wrong issuer",
    "expired",
    "not yet valid",
    "unknown kid",
    "the realm's kid, another key",
    "tampered payload of a real token",
]


@pytest.mark.parametrize("case", CASES)
def test_forged_token_is_401(
    case: str,
    gateway: FlaskClient,
    keycloak: Keycloak,
    imported_key: ImportedKey,
    realm_key: dict[str, Any],
) -> None:
    token = _cases(keycloak, imported_key, realm_key)[case]()
    resp = _get_jobs(gateway, token)
    assert resp.status_code == 401, (case, resp.get_json())
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    assert resp.get_json()["status"] == 401
