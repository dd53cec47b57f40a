"""The OpenID Connect client of the browser pages: authorization code + PKCE (RFC 7636).

No Flask here: :class:`OidcClient` builds the authorization URL, exchanges the
code, refreshes the tokens and ends the provider's session; the routes in
:mod:`gateway.web.auth_routes` keep the results in the server-side session.

* Sign-in: a random ``state`` (checked on the way back, against the session),
  a PKCE verifier (S256) and a ``nonce``; the redirect URI is
  ``{server.base_url}/signin/callback``, the public URL, also behind a proxy.
* The code is exchanged at the token endpoint over the back channel; the access
  token is then checked like any bearer token (signature, issuer, audience) by
  the gateway's authenticator before the session is signed in.
* Sign-out posts the refresh token to the provider's ``end_session_endpoint``
  (Keycloak ends its SSO session: the next sign-in asks for the password again).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from gateway.identity.oidc import ProviderMetadata, ProviderUnavailable, discover
from gateway.settings import OidcSettings, WebSettings

CALLBACK_PATH = "/signin/callback"


class SignInFailed(Exception):
    """The provider refused the code or the refresh token (sign in again)."""


@dataclass(frozen=True)
class PendingSignIn:
    """What the callback checks: kept in the session between the redirect and the return."""

    state: str
    verifier: str
    nonce: str
    next_path: str

    def as_dict(self) -> dict[str, str]:
        return {
            "state": self.state,
            "verifier": self.verifier,
            "nonce": self.nonce,
            "next": self.next_path,
        }

    @classmethod
    def from_dict(cls, data: Any) -> PendingSignIn | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(str(data["state"]), str(data["verifier"]), str(data["nonce"]), data["next"])
        except KeyError:
            return None


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of ``verifier``."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def safe_next(path: str | None) -> str:
    """A local path to return to after sign-in (never another site: no open redirect)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/ui/"
    return path


class OidcClient:
    """Authorization code + PKCE against ``auth.oidc.issuer`` as ``web.client_id``."""

    def __init__(self, oidc: OidcSettings, web: WebSettings, base_url: str) -> None:
        self.client_id = web.client_id
        self.scope = web.scope
        self.redirect_uri = base_url.rstrip("/") + CALLBACK_PATH
        self._issuer = oidc.issuer
        self._secret = (
            Path(web.client_secret_file).read_text(encoding="utf-8").strip()
            if web.client_secret_file
            else None
        )
        self._http = httpx.Client(timeout=oidc.http_timeout_seconds, verify=oidc.verify_tls)
        self._metadata: ProviderMetadata | None = None
        self._lock = threading.Lock()

    def metadata(self) -> ProviderMetadata:
        """The provider's endpoints (discovered once; ProviderUnavailable when unreachable)."""
        with self._lock:
            if self._metadata is None:
                found = discover(self._http, self._issuer)
                if not (found.authorization_endpoint and found.token_endpoint):
                    raise ProviderUnavailable(f"{self._issuer} offers no authorization-code flow")
                self._metadata = found
            return self._metadata

    def start(self, next_path: str) -> tuple[str, PendingSignIn]:
        """The provider's sign-in URL, and what the callback must find in the session."""
        pending = PendingSignIn(
            state=secrets.token_urlsafe(24),
            verifier=secrets.token_urlsafe(48),
            nonce=secrets.token_urlsafe(16),
            next_path=safe_next(next_path),
        )
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": self.scope,
                "state": pending.state,
                "nonce": pending.nonce,
                "code_challenge": pkce_challenge(pending.verifier),
                "code_challenge_method": "S256",
            }
        )
        return f"{self.metadata().authorization_endpoint}?{query}", pending

    def exchange(self, code: str, verifier: str) -> dict[str, Any]:
        """The code for tokens (``access_token``, ``refresh_token``, ``id_token``, expiry)."""
        return self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "code_verifier": verifier,
            }
        )

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        return self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def end_session(self, tokens: dict[str, Any]) -> None:
        """End the provider's session of these tokens (best effort: the local one ends anyway)."""
        endpoint = self.metadata().end_session_endpoint
        refresh_token = tokens.get("refresh_token")
        if not endpoint or not refresh_token:
            return
        try:
            self._http.post(endpoint, data=self._client_auth({"refresh_token": refresh_token}))
        except httpx.HTTPError:
            pass

    def _client_auth(self, form: dict[str, str]) -> dict[str, str]:
        form = {**form, "client_id": self.client_id}
        if self._secret:
            form["client_secret"] = self._secret
        return form

    def _token_request(self, form: dict[str, str]) -> dict[str, Any]:
        endpoint = self.metadata().token_endpoint
        assert endpoint is not None  # checked by metadata()
        try:
            response = self._http.post(endpoint, data=self._client_auth(form))
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"cannot reach {endpoint}: {exc}") from exc
        if response.status_code >= 500:
            raise ProviderUnavailable(f"{endpoint} answered HTTP {response.status_code}")
        try:
            doc = response.json()
        except ValueError:
            doc = {}
        if response.status_code != 200 or not isinstance(doc.get("access_token"), str):
            reason = doc.get("error_description") or doc.get("error") or response.status_code
            raise SignInFailed(f"the identity provider refused: {reason}")
        now = time.time()
        return {
            "access_token": doc["access_token"],
            "refresh_token": doc.get("refresh_token"),
            "id_token": doc.get("id_token"),
            "expires_at": now + float(doc.get("expires_in", 60)),
            "refresh_expires_at": now + float(doc.get("refresh_expires_in") or 0)
            if doc.get("refresh_expires_in")
            else None,
        }
