"""OpenID Connect bearer-token validation: discovery, a throttled JWKS cache, claim checks.

Error contract::

    TokenError            the token is missing, malformed, forged, expired, for
                          another issuer/audience, or signed by an unknown key;
                          the caller answers 401 (never a 500)
    ProviderUnavailable   the provider's discovery document or JWKS cannot be read
                          and no usable keys are cached; the caller answers 503

Security rules enforced here, whatever the token header says:

* only the configured asymmetric algorithms (RS/PS/ES); ``none`` and every HMAC
  algorithm are refused before any key is looked at, so a public key can never
  be used as an HMAC secret;
* the key is chosen by ``kid`` from the provider's JWKS and must fit the
  algorithm family (RSA for RS/PS, EC for ES), be a signing key, and agree with
  the key's own ``alg`` when the JWKS states one;
* ``iss`` must equal the configured issuer, ``aud`` must name an accepted
  audience, ``exp`` and ``sub`` are required, ``exp``/``nbf``/``iat`` are
  checked with a small leeway;
* an unknown ``kid`` triggers at most one JWKS fetch per
  ``jwks_min_refresh_seconds`` (single flight), so a flood of made-up key ids
  cannot be turned into a flood of requests to the identity provider.

A token that passed every check is remembered (by its SHA-256, never the token
itself) until its ``exp`` or for :data:`TOKEN_CACHE_SECONDS`, whichever comes
first, so a client polling with the same token pays for one signature check a
minute instead of one per request. Only successes are cached. The price: a key
withdrawn from the provider's JWKS stops being accepted up to that long later
for the tokens already seen (an expired token is never accepted).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from gateway.settings import OidcSettings

log = logging.getLogger(__name__)

#: Tokens larger than this are refused unread.
MAX_TOKEN_BYTES = 16_384
#: Longest time a validated token is trusted without checking it again (seconds).
TOKEN_CACHE_SECONDS = 60.0
#: Most validated tokens remembered at once (least recently used ones are dropped).
TOKEN_CACHE_ENTRIES = 2048
_ALLOWED_FAMILIES = {"RS": "RSA", "PS": "RSA", "ES": "EC"}
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384"}


class TokenError(Exception):
    """The bearer token cannot be accepted (answer 401)."""


class ProviderUnavailable(Exception):
    """The identity provider's metadata or keys cannot be read (answer 503)."""


@dataclass(frozen=True)
class ProviderMetadata:
    """The parts of the OIDC discovery document the gateway uses."""

    issuer: str
    jwks_uri: str
    token_endpoint: str | None = None
    #: The browser sign-in's endpoints (gateway.web.signin).
    authorization_endpoint: str | None = None
    end_session_endpoint: str | None = None


def discover(client: httpx.Client, issuer: str) -> ProviderMetadata:
    """Read ``{issuer}/.well-known/openid-configuration`` and check its ``issuer``."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    doc = _get_json(client, url)
    if doc.get("issuer") != issuer:
        raise ProviderUnavailable(
            f"discovery document at {url} names issuer {doc.get('issuer')!r}, expected {issuer!r}"
        )
    jwks_uri = doc.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri:
        raise ProviderUnavailable(f"discovery document at {url} has no jwks_uri")
    return ProviderMetadata(
        issuer,
        jwks_uri,
        token_endpoint=_optional_str(doc.get("token_endpoint")),
        authorization_endpoint=_optional_str(doc.get("authorization_endpoint")),
        end_session_endpoint=_optional_str(doc.get("end_session_endpoint")),
    )


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _get_json(client: httpx.Client, url: str) -> dict[str, Any]:
    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(f"cannot reach {url}: {exc}") from exc
    if response.status_code != 200:
        raise ProviderUnavailable(f"{url} answered HTTP {response.status_code}")
    try:
        doc = response.json()
    except ValueError as exc:
        raise ProviderUnavailable(f"{url} did not answer JSON") from exc
    if not isinstance(doc, dict):
        raise ProviderUnavailable(f"{url} did not answer a JSON object")
    return doc


def provider_keys(settings: OidcSettings) -> tuple[str, int]:
    """The JWKS URL and how many usable signing keys it offers (``hpcgw doctor``).

    Reads discovery (unless ``jwks_uri`` is set) and the JWKS once, as a token
    check would; raises :class:`ProviderUnavailable` saying what is wrong.
    """
    with httpx.Client(timeout=settings.http_timeout_seconds, verify=settings.verify_tls) as client:
        jwks_uri = settings.jwks_uri or discover(client, settings.issuer).jwks_uri
        keys = _parse_jwks(_get_json(client, jwks_uri))
    if not keys:
        raise ProviderUnavailable(f"{jwks_uri} offers no usable RSA/EC signing key")
    return jwks_uri, len(keys)


class JwksCache:
    """Signing keys by ``kid``, re-read on an unknown kid at most once per interval.

    ``fetch`` returns a JWKS document (``{"keys": [...]}``) or raises
    :class:`ProviderUnavailable`. Lookups are thread-safe; concurrent misses
    share one fetch.
    """

    def __init__(
        self,
        fetch: Callable[[], Mapping[str, Any]],
        *,
        min_refresh_seconds: float = 30.0,
        max_age_seconds: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._min_refresh = min_refresh_seconds
        self._max_age = max_age_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._loaded_at: float | None = None
        self._last_attempt: float | None = None
        #: Number of JWKS fetches attempted (observability and tests).
        self.fetches = 0

    def get(self, kid: str) -> jwt.PyJWK | None:
        """The key named ``kid``, or None when the provider does not publish it."""
        now = self._clock()
        key = self._keys.get(kid)
        if key is not None and self._fresh(now):
            return key
        with self._lock:
            key = self._keys.get(kid)
            if key is not None and self._fresh(self._clock()):
                return key
            if self._may_fetch(self._clock()):
                self._refresh()
            elif not self._keys and self._loaded_at is None:
                raise ProviderUnavailable("the identity provider's keys are not available yet")
            return self._keys.get(kid)

    def _fresh(self, now: float) -> bool:
        return self._loaded_at is not None and now - self._loaded_at < self._max_age

    def _may_fetch(self, now: float) -> bool:
        return self._last_attempt is None or now - self._last_attempt >= self._min_refresh

    def _refresh(self) -> None:
        self._last_attempt = self._clock()
        self.fetches += 1
        try:
            document = self._fetch()
        except ProviderUnavailable as exc:
            if self._keys:
                log.warning("JWKS refresh failed, keeping %d cached keys: %s", len(self._keys), exc)
                return
            raise
        self._keys = _parse_jwks(document)
        self._loaded_at = self._clock()
        log.info("JWKS loaded: %d signing keys", len(self._keys))


def _parse_jwks(document: Mapping[str, Any]) -> dict[str, jwt.PyJWK]:
    keys: dict[str, jwt.PyJWK] = {}
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise ProviderUnavailable("JWKS document has no 'keys' list")
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("use", "sig") != "sig" or entry.get("kty") not in ("RSA", "EC"):
            continue
        try:
            keys[entry["kid"]] = jwt.PyJWK(entry)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            log.warning("ignoring unusable JWKS key %s: %s", entry.get("kid"), exc)
    return keys


class TokenCache:
    """Claims of validated tokens by SHA-256, each until ``min(exp, now + ttl)``.

    Bounded (least recently used dropped first) and thread-safe. ``clock`` is
    wall-clock seconds, the scale of ``exp``.
    """

    def __init__(
        self,
        ttl_seconds: float = TOKEN_CACHE_SECONDS,
        max_entries: int = TOKEN_CACHE_ENTRIES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, tuple[float, dict[str, Any]]] = OrderedDict()

    @staticmethod
    def _key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, token: str) -> dict[str, Any] | None:
        """A copy of the claims of ``token`` if it was validated and is still trusted."""
        key = self._key(token)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self._clock() >= entry[0]:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
        return dict(entry[1])

    def put(self, token: str, claims: Mapping[str, Any]) -> None:
        """Remember the claims of a token that passed every check."""
        if self._ttl <= 0 or self._max <= 0:
            return
        exp = claims.get("exp")
        until = self._clock() + self._ttl
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            until = min(until, float(exp))
        key = self._key(token)
        with self._lock:
            self._entries[key] = (until, dict(claims))
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class TokenValidator:
    """Validates bearer tokens for one issuer; thread-safe, one per process."""

    def __init__(
        self,
        settings: OidcSettings,
        client: httpx.Client | None = None,
        cache: TokenCache | None = None,
    ) -> None:
        self.settings = settings
        #: Tokens already validated (see the module docstring); TokenCache(0) disables it.
        self.cache = cache if cache is not None else TokenCache()
        self._client = client or httpx.Client(
            timeout=settings.http_timeout_seconds, verify=settings.verify_tls
        )
        self._algorithms = frozenset(settings.algorithms)
        if not self._algorithms or any(a[:2] not in _ALLOWED_FAMILIES for a in self._algorithms):
            raise ValueError(f"only RS*/PS*/ES* algorithms are allowed, got {settings.algorithms}")
        self._jwks_uri = settings.jwks_uri
        self._meta_lock = threading.Lock()
        self.jwks = JwksCache(
            self._fetch_jwks,
            min_refresh_seconds=settings.jwks_min_refresh_seconds,
            max_age_seconds=settings.jwks_max_age_seconds,
        )

    def close(self) -> None:
        self._client.close()

    def _fetch_jwks(self) -> Mapping[str, Any]:
        return _get_json(self._client, self._jwks_url())

    def _jwks_url(self) -> str:
        with self._meta_lock:
            if self._jwks_uri is None:
                self._jwks_uri = discover(self._client, self.settings.issuer).jwks_uri
            return self._jwks_uri

    def validate(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token``; raises TokenError or ProviderUnavailable."""
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenError("the token is too large")
        cached = self.cache.get(token)
        if cached is not None:
            return cached
        claims = self._verify(token)
        self.cache.put(token, claims)
        return claims

    def _verify(self, token: str) -> dict[str, Any]:
        """Every check of the module docstring, on a token not seen (or no longer trusted)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("the token is not a well-formed JWT") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise TokenError(f"token algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenError("the token names no signing key (kid)")
        jwk = self.jwks.get(kid)
        if jwk is None:
            raise TokenError("the token is signed by an unknown key")
        _check_key_fits(jwk, alg)
        s = self.settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=jwk.key,
                algorithms=[alg],
                audience=s.audience,
                issuer=s.issuer,
                leeway=s.leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"], "verify_iat": True},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise TokenError("the token is not meant for this service (aud)") from None
        except jwt.InvalidIssuerError:
            raise TokenError("the token was issued by another provider (iss)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"the token has no '{exc.claim}' claim") from None
        except jwt.PyJWTError:
            raise TokenError("the token signature or claims are invalid") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.strip():
            raise TokenError("the token has no subject")
        typ = claims.get("typ")
        if typ is not None and typ not in s.token_types:
            raise TokenError(f"a {typ!r} token cannot be used as an access token")
        return claims


def _check_key_fits(jwk: jwt.PyJWK, alg: str) -> None:
    """The JWKS key must be of the algorithm's family and not contradict its own ``alg``."""
    data = getattr(jwk, "_jwk_data", {})
    declared = data.get("alg") if isinstance(data, dict) else None
    if jwk.key_type != _ALLOWED_FAMILIES[alg[:2]] or (declared is not None and declared != alg):
        raise TokenError("the token's algorithm does not fit its signing key")
    if jwk.key_type == "EC" and data.get("crv") != _EC_CURVES.get(alg):
        raise TokenError("the token's algorithm does not fit its signing key")
