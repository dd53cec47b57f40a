"""The two per-request caches of authentication: validated tokens and active HPC logins.

Tokens: a token seen valid is trusted until min(exp, TOKEN_CACHE_SECONDS) -- shown
by withdrawing its signing key from the provider: still accepted within that
time, refused after it. Logins: an active login is trusted LOGIN_CACHE_SECONDS,
a save in this process is seen at once, nothing negative is remembered.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from gateway import db
from gateway.identity.identity_map import IdentityStatus, IdentityStore, LoginCache
from gateway.identity.oidc import TokenCache, TokenError, TokenValidator
from gateway.jobs.tables import hpc_identities
from gateway.settings import OidcSettings
from tests.unit.test_oidc import (
    AUDIENCE,
    ISSUER,
    OTHER_RSA_KEY,
    FakeProvider,
    _jwk,
    claims,
    sign,
)

pytestmark = pytest.mark.unit


class Clock:
    """A settable clock starting at the real wall-clock time (the scale of ``exp``)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _validator(provider: FakeProvider, cache: TokenCache) -> TokenValidator:
    settings = OidcSettings(issuer=ISSUER, audience=[AUDIENCE], jwks_min_refresh_seconds=0)
    client = httpx.Client(transport=httpx.MockTransport(provider.handler))
    return TokenValidator(settings, client, cache=cache)


def _withdraw_rsa1(provider: FakeProvider, validator: TokenValidator) -> None:
    """The provider drops key ``rsa1`` and the validator re-reads the JWKS."""
    provider.keys = [k for k in provider.keys if k["kid"] != "rsa1"]
    provider.keys.append(_jwk(OTHER_RSA_KEY, "rsa2", "RS256"))
    validator.validate(sign(claims(sub="u-other"), OTHER_RSA_KEY, kid="rsa2"))  # refreshes


# -- tokens -------------------------------------------------------------------------


def test_validated_token_is_trusted_for_the_cache_time_only() -> None:
    provider, clock = FakeProvider(), Clock()
    validator = _validator(provider, TokenCache(ttl_seconds=60, clock=clock))
    token = sign(claims(exp=int(clock.now) + 3600))
    first = validator.validate(token)
    _withdraw_rsa1(provider, validator)
    clock.now += 59
    assert validator.validate(token) == first  # from the cache: no key needed
    clock.now += 2
    with pytest.raises(TokenError, match="unknown key"):
        validator.validate(token)


def test_cached_token_never_outlives_its_exp() -> None:
    provider, clock = FakeProvider(), Clock()
    validator = _validator(provider, TokenCache(ttl_seconds=600, clock=clock))
    token = sign(claims(exp=int(clock.now) + 30))
    validator.validate(token)
    _withdraw_rsa1(provider, validator)
    clock.now += 10
    assert validator.validate(token)["sub"] == "u-alice"
    clock.now += 25  # past exp, well within the 600 s: checked again, and refused
    with pytest.raises(TokenError):
        validator.validate(token)


def test_failures_are_not_cached_and_claims_are_copies() -> None:
    provider, clock = FakeProvider(), Clock()
    cache = TokenCache(clock=clock)
    validator = _validator(provider, cache)
    forged = sign(claims(), OTHER_RSA_KEY, kid="rsa1")
    for _ in range(2):
        with pytest.raises(TokenError):
            validator.validate(forged)
    assert len(cache) == 0
    token = sign(claims())
    validator.validate(token)["sub"] = "someone-else"
    assert validator.validate(token)["sub"] == "u-alice"
    disabled = _validator(FakeProvider(), TokenCache(ttl_seconds=0))
    disabled.validate(token)
    assert len(disabled.cache) == 0


def test_token_cache_is_bounded_least_recently_used_first() -> None:
    cache = TokenCache(max_entries=2)
    exp: dict[str, Any] = {"exp": time.time() + 300}
    cache.put("a", {**exp, "sub": "a"})
    cache.put("b", {**exp, "sub": "b"})
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.put("c", {**exp, "sub": "c"})
    assert len(cache) == 2
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None


def test_concurrent_validation_of_many_tokens() -> None:
    validator = _validator(FakeProvider(), TokenCache(max_entries=16))
    tokens = [sign(claims(sub=f"u-{i}")) for i in range(40)]
    seen: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        for token in tokens:
            sub = validator.validate(token)["sub"]
            with lock:
                seen.append(sub)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == sorted(f"u-{i}" for i in range(40) for _ in range(6))
    assert len(validator.cache) <= 16


# -- HPC logins ---------------------------------------------------------------------


@pytest.fixture
def engine(tmp_path):
    url = f"sqlite:///{tmp_path}/ids.db"
    db.upgrade(url)
    engine = db.make_engine(url)
    yield engine
    engine.dispose()


def _disable_behind_its_back(engine: sa.Engine, sub: str) -> None:
    """What a user sync in *another* process does: nothing here is told."""
    with engine.begin() as conn:
        conn.execute(
            hpc_identities.update().where(hpc_identities.c.sub == sub).values(status="disabled")
        )


def test_active_login_is_trusted_for_the_cache_time(engine: sa.Engine) -> None:
    clock = [0.0]
    store = IdentityStore(engine, LoginCache(ttl_seconds=30, clock=lambda: clock[0]))
    store.save("u-bob", "bob", "bob", IdentityStatus.ACTIVE, ["gep"])
    assert store.active_login("u-bob") == "bob"
    _disable_behind_its_back(engine, "u-bob")
    clock[0] = 29.0
    assert store.active_login("u-bob") == "bob"
    clock[0] = 30.5
    assert store.active_login("u-bob") is None


def test_a_save_in_this_process_is_seen_at_once(engine: sa.Engine) -> None:
    auth = IdentityStore(engine)  # what the authenticator holds
    sync = IdentityStore(engine)  # what the user sync uses
    sync.save("u-bob", "bob", "bob", IdentityStatus.ACTIVE, ["gep"])
    assert auth.active_login("u-bob") == "bob"
    sync.save("u-bob", "bob", "bob", IdentityStatus.DISABLED, [])
    assert auth.active_login("u-bob") is None
    sync.save("u-bob", "bob", "bob", IdentityStatus.ACTIVE, ["gep"])
    assert auth.active_login("u-bob") == "bob"


def test_unprovisioned_users_are_not_remembered(engine: sa.Engine) -> None:
    store = IdentityStore(engine)
    assert store.active_login("u-new") is None
    with engine.begin() as conn:  # provisioned by another process
        conn.execute(
            hpc_identities.insert().values(
                sub="u-new",
                username="new",
                hpc_login="new",
                status="active",
                accounts=["gep"],
                created=sa.func.now(),
                updated=sa.func.now(),
            )
        )
    assert store.active_login("u-new") == "new"


def test_a_read_racing_a_save_does_not_store_the_stale_login() -> None:
    cache = LoginCache()
    generation = cache.generation  # a read starts ...
    cache.forget("u-bob")  # ... a save disables the user meanwhile ...
    cache.put("u-bob", "bob", generation)  # ... the read's (stale) answer is not kept
    assert cache.get("u-bob") is None
    cache.put("u-bob", "bob", cache.generation)
    assert cache.get("u-bob") == "bob"
