"""Bearer-token validation: the forged-token suite, algorithm rules, JWKS refresh throttling."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gateway.errors import ServiceUnavailable, Unauthorized
from gateway.identity.auth import OidcAuthenticator
from gateway.identity.oidc import JwksCache, ProviderUnavailable, TokenError, TokenValidator
from gateway.settings import AuthSettings, OidcSettings

pytestmark = pytest.mark.unit

ISSUER = "https://idp.example.org/realms/gep"
AUDIENCE = "ogc-gateway"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _jwk(key: Any, kid: str, alg: str | None = None) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        data = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        data = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    data.update(kid=kid, use="sig")
    if alg:
        data["alg"] = alg
    return data


class FakeProvider:
    """Discovery + JWKS over httpx.MockTransport, counting requests."""

    def __init__(self) -> None:
        self.keys = [
            _jwk(RSA_KEY, "rsa1", "RS256"),
            _jwk(EC_KEY, "ec1", "ES256"),
            _jwk(RSA_KEY, "pss1", "PS256"),
        ]
        self.jwks_requests = 0
        self.discovery_requests = 0
        self.fail_jwks = False
        self.issuer = ISSUER

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/.well-known/openid-configuration"):
            self.discovery_requests += 1
            return httpx.Response(
                200,
                json={"issuer": self.issuer, "jwks_uri": f"{ISSUER}/protocol/openid-connect/certs"},
            )
        if request.url.path.endswith("/certs"):
            self.jwks_requests += 1
            if self.fail_jwks:
                return httpx.Response(500)
            return httpx.Response(200, json={"keys": self.keys})
        return httpx.Response(404)


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


def _validator(provider: FakeProvider, **overrides: Any) -> TokenValidator:
    settings = OidcSettings(issuer=ISSUER, audience=[AUDIENCE], **overrides)
    return TokenValidator(settings, httpx.Client(transport=httpx.MockTransport(provider.handler)))


@pytest.fixture
def authenticator(provider: FakeProvider) -> OidcAuthenticator:
    settings = AuthSettings(mode="oidc", oidc=OidcSettings(issuer=ISSUER, audience=[AUDIENCE]))
    return OidcAuthenticator(settings, _validator(provider), {"u-alice": "alice"}.get)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": [AUDIENCE, "account"],
        "sub": "u-alice",
        "exp": now + 300,
        "iat": now,
        "typ": "Bearer",
        "preferred_username": "alice",
        "realm_access": {"roles": ["hpc-user"]},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, Any], key: Any = RSA_KEY, alg: str = "RS256", kid: str = "rsa1") -> str:
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())
    return head + "." + _b64(signature)


def hs256_with_public_key(payload: dict[str, Any], secret: bytes, kid: str = "rsa1") -> str:
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = _b64(json.dumps(payload).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- the forged-token suite ------------------------------------------------------------

PUBLIC_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def _tampered() -> str:
    head, _body, sig = sign(claims()).split(".")
    forged = _b64(json.dumps(claims(realm_access={"roles": ["hpc-admin"]})).encode())
    return f"{head}.{forged}.{sig}"


FORGED = {
    "alg none": lambda: handmade({"alg": "none", "kid": "rsa1"}, claims()),
    "alg None, no signature": lambda: handmade({"alg": "None", "kid": "rsa1"}, claims()),
    "HS256 keyed with the public key PEM": lambda: hs256_with_public_key(claims(), PUBLIC_PEM),
    "HS256 keyed with the JWK modulus": lambda: hs256_with_public_key(
        claims(), _jwk(RSA_KEY, "rsa1")["n"].encode()
    ),
    "expired": lambda: sign(claims(exp=int(time.time()) - 3600, iat=int(time.time()) - 4000)),
    "not yet valid (nbf)": lambda: sign(claims(nbf=int(time.time()) + 3600)),
    "issued in the future (iat)": lambda: sign(claims(iat=int(time.time()) + 3600)),
    "wrong issuer": lambda: sign(claims(iss="https://evil.example.org/realms/gep")),
    "wrong audience": lambda: sign(claims(aud="some-other-client")),
    "no audience": lambda: sign(claims(aud=None)),
    "unknown kid": lambda: sign(claims(), OTHER_RSA_KEY, kid="not-published"),
    "known kid, other key": lambda: sign(claims(), OTHER_RSA_KEY, kid="rsa1"),
    "tampered payload": _tampered,
    "missing subject": lambda: sign(claims(sub=None)),
    "empty subject": lambda: sign(claims(sub="  ")),
    "missing exp": lambda: sign(claims(exp=None)),
    "no kid": lambda: jwt.encode(claims(), RSA_KEY, algorithm="RS256"),
    "RS256 on the EC key's kid": lambda: sign(claims(), kid="ec1"),
    "PS256 on an RS256-only key": lambda: sign(claims(), alg="PS256", kid="rsa1"),
    "refresh token used as access token": lambda: sign(claims(typ="Refresh")),
    "ID token used as access token": lambda: sign(claims(typ="ID")),
    "RS512 not on the allow-list": lambda: sign(claims(), alg="RS512"),
    "garbage": lambda: "not.a.jwt",
    "two segments": lambda: "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0",
    "oversized": lambda: sign(claims(pad="x" * 20_000)),
}


@pytest.mark.parametrize("case", sorted(FORGED))
def test_forged_token_is_unauthorized(case: str, authenticator: OidcAuthenticator) -> None:
    token = FORGED[case]()
    with pytest.raises(Unauthorized) as info:
        authenticator.authenticate(bearer(token))
    assert info.value.status == 401
    challenge = info.value.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Basic YWxpY2U6YWxpY2U="},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer a b"},
    ],
)
def test_missing_or_malformed_header_is_unauthorized(
    headers: dict[str, str], authenticator: OidcAuthenticator
) -> None:
    with pytest.raises(Unauthorized) as info:
        authenticator.authenticate(headers)
    assert info.value.headers["WWW-Authenticate"].startswith('Bearer realm="')


def test_valid_tokens_of_each_allowed_algorithm(authenticator: OidcAuthenticator) -> None:
    for token in (
        sign(claims()),
        sign(claims(), EC_KEY, "ES256", "ec1"),
        sign(claims(), RSA_KEY, "PS256", "pss1"),
    ):
        principal = authenticator.authenticate({"authorization": f"bearer {token}"})
        assert (principal.sub, principal.username, principal.hpc_login) == (
            "u-alice",
            "alice",
            "alice",
        )
        assert principal.token == token and not principal.is_admin


def test_small_clock_skew_is_tolerated(authenticator: OidcAuthenticator) -> None:
    now = int(time.time())
    token = sign(claims(exp=now - 10, iat=now - 310, nbf=now + 10))
    assert authenticator.authenticate(bearer(token)).sub == "u-alice"


def test_hmac_algorithms_cannot_be_configured() -> None:
    with pytest.raises(ValueError):
        OidcSettings(algorithms=["HS256"])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        OidcSettings(algorithms=["none"])  # type: ignore[list-item]


# -- provider problems -------------------------------------------------------------------


def test_unreachable_keys_answer_503(
    provider: FakeProvider, authenticator: OidcAuthenticator
) -> None:
    provider.fail_jwks = True
    with pytest.raises(ServiceUnavailable):
        authenticator.authenticate(bearer(sign(claims())))


def test_cached_keys_survive_a_provider_outage(provider: FakeProvider) -> None:
    clock = [0.0]
    validator = _validator(provider, jwks_min_refresh_seconds=10, jwks_max_age_seconds=60)
    validator.jwks._clock = lambda: clock[0]
    assert validator.validate(sign(claims()))["sub"] == "u-alice"
    provider.fail_jwks = True
    clock[0] = 120.0  # cache is stale, refresh fails: keep the known keys
    assert validator.validate(sign(claims()))["sub"] == "u-alice"


def test_discovery_issuer_mismatch_is_refused(provider: FakeProvider) -> None:
    provider.issuer = "https://other.example.org/realms/gep"
    with pytest.raises(ProviderUnavailable):
        _validator(provider).validate(sign(claims()))


# -- unknown-kid flood and key rotation ---------------------------------------------------


def test_unknown_kid_flood_is_throttled(provider: FakeProvider) -> None:
    clock = [1000.0]
    validator = _validator(provider, jwks_min_refresh_seconds=30)
    validator.jwks._clock = lambda: clock[0]
    validator.validate(sign(claims()))
    assert provider.jwks_requests == 1
    for _ in range(500):
        with pytest.raises(TokenError):
            validator.validate(sign(claims(), OTHER_RSA_KEY, kid=uuid.uuid4().hex))
    assert provider.jwks_requests <= 2
    clock[0] += 31
    for _ in range(500):
        with pytest.raises(TokenError):
            validator.validate(sign(claims(), OTHER_RSA_KEY, kid=uuid.uuid4().hex))
    assert provider.jwks_requests <= 3
    assert provider.discovery_requests == 1


def test_concurrent_unknown_kid_flood_is_bounded(provider: FakeProvider) -> None:
    validator = _validator(provider, jwks_min_refresh_seconds=30)
    tokens = [sign(claims(), OTHER_RSA_KEY, kid=f"bogus-{i}") for i in range(40)]
    errors: list[Exception] = []

    def hammer() -> None:
        for token in tokens:
            try:
                validator.validate(token)
            except TokenError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 8 * 40
    assert provider.jwks_requests == 1


def test_rotated_key_is_picked_up_once(provider: FakeProvider) -> None:
    clock = [0.0]
    validator = _validator(provider, jwks_min_refresh_seconds=30)
    validator.jwks._clock = lambda: clock[0]
    validator.validate(sign(claims()))
    provider.keys.append(_jwk(OTHER_RSA_KEY, "rsa2", "RS256"))
    clock[0] = 40.0
    assert validator.validate(sign(claims(), OTHER_RSA_KEY, kid="rsa2"))["sub"] == "u-alice"
    assert provider.jwks_requests == 2


def test_jwks_cache_skips_unusable_keys() -> None:
    doc = {
        "keys": [
            {"kid": "enc", "kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kid": "oct", "kty": "oct", "k": "c2VjcmV0"},
            {"kty": "RSA", "n": "x"},
            _jwk(RSA_KEY, "good"),
        ]
    }
    cache = JwksCache(lambda: doc)
    assert cache.get("good") is not None
    assert cache.get("enc") is None and cache.get("oct") is None
