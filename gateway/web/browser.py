"""Browser sessions in the request cycle: the session's token for the authenticator,
CSRF on every state-changing request a cookie authenticates, and the redirect to
sign-in for HTML requests (API clients keep their 401).

:class:`BrowserAuth` is handed to :func:`gateway.http.security.install_authentication`
by the composition root. A request with an ``Authorization`` header is an API
client's and is left alone: the cookie is only read when there is none.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from flask import Request, g, redirect, request
from werkzeug.wrappers import Response

from gateway.errors import Forbidden
from gateway.identity.auth import Authenticator, Principal
from gateway.identity.oidc import ProviderUnavailable
from gateway.web.sessions import COOKIE, CSRF_FIELD, CSRF_HEADER, BrowserSession, SessionStore
from gateway.web.signin import OidcClient, SignInFailed

log = logging.getLogger(__name__)

#: Refresh the access token when it has less than this left.
REFRESH_MARGIN_SECONDS = 30.0
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_G_SESSION = "hpcgw_browser_session"
#: Pages whose form contents are kept across a sign-in (an expired session on submit).
DRAFT_PREFIX = "/ui/processes/"


class CsrfFailed(Forbidden):
    title = "Form expired or forged"


def wants_html(req: Request) -> bool:
    """A person's browser asking for a page (not a JSON/XML client)."""
    fmt = req.args.get("f")
    if fmt:
        return fmt == "html"
    if req.path.startswith("/ui/"):
        return True
    best = req.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


class BrowserAuth:
    """Sessions, CSRF and the sign-in redirect (``client`` None: ``auth.mode: none``)."""

    def __init__(
        self, store: SessionStore, client: OidcClient | None, authenticator: Authenticator
    ) -> None:
        self.store = store
        self.client = client
        self.authenticator = authenticator

    def authenticate_token(self, access_token: str) -> Principal:
        """The caller a freshly obtained access token names (checked as any bearer token)."""
        return self.authenticator.authenticate({"Authorization": f"Bearer {access_token}"})

    # -- the session of this request -------------------------------------------

    def current(self) -> BrowserSession | None:
        """This request's live session (read once per request), or None."""
        if _G_SESSION not in g:
            setattr(g, _G_SESSION, self.store.get(request.cookies.get(COOKIE)))
        found = g.get(_G_SESSION)
        return found if isinstance(found, BrowserSession) else None

    def form_session(self) -> BrowserSession:
        """The session whose CSRF token a form carries (created when there is none)."""
        session = self.current()
        if session is None:
            session = self.store.create({})
            setattr(g, _G_SESSION, session)
            g.hpcgw_new_cookie = session
        return session

    # -- the authentication hook's questions -------------------------------------

    def headers_for(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        """``headers``, with the session's bearer token when the request has none.

        A state-changing request authenticated by the cookie must carry the
        session's CSRF token (form field or header), or it is refused (403).
        """
        if "Authorization" in headers:
            return headers
        session = self.current()
        token = self._access_token(session) if session is not None else None
        # without a usable session nothing is authenticated by the cookie: the request
        # is refused or sent to sign-in (with the form kept) and changes nothing
        by_cookie = token is not None or (self.client is None and request.path.startswith("/ui/"))
        if by_cookie and request.method not in _SAFE_METHODS:
            self.check_csrf(session)
        if token is None:
            return headers
        return {**headers, "Authorization": f"Bearer {token}"}

    def check_csrf(self, session: BrowserSession | None) -> None:
        presented = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
        if session is None or not session.csrf_ok(presented):
            raise CsrfFailed(
                "this form's security token is missing or out of date: "
                "reload the page and submit it again"
            )

    def unauthenticated(self) -> Response | None:
        """The redirect to sign-in for a page request without a session (None: answer 401)."""
        if self.client is None or not wants_html(request):
            return None
        target = request.full_path if request.query_string else request.path
        query: dict[str, str] = {"next": target if request.method == "GET" else request.path}
        if request.method == "POST" and request.path.startswith(DRAFT_PREFIX):
            self._keep_draft()
        return redirect(f"{request.script_root}/signin?{urlencode(query)}", code=303)

    def _keep_draft(self) -> None:
        """Keep a submitted form (session expired) so the page can fill it in again."""
        draft = {k: v for k, v in request.form.items() if k != CSRF_FIELD}
        session = self.current() or self.form_session()
        session.data.setdefault("drafts", {})[request.path] = draft
        self.store.save(session)

    # -- tokens ---------------------------------------------------------------------

    def _access_token(self, session: BrowserSession) -> str | None:
        tokens = session.tokens
        if not tokens:
            return None
        if float(tokens.get("expires_at", 0)) - REFRESH_MARGIN_SECONDS > time.time():
            return str(tokens["access_token"])
        return self._refreshed(session)

    def _refreshed(self, session: BrowserSession) -> str | None:
        refresh_token = session.tokens.get("refresh_token")
        if self.client is None or not refresh_token:
            return None
        try:
            tokens = self.client.refresh(str(refresh_token))
        except (SignInFailed, ProviderUnavailable) as exc:
            log.info("browser session could not be refreshed (%s): signing in again", exc)
            session.data.pop("tokens", None)
            self.store.save(session)
            return None
        session.data["tokens"] = tokens
        self.store.save(session)
        return str(tokens["access_token"])


def cookie_args(secure: bool, max_age: int | None) -> dict[str, Any]:
    """The session cookie's attributes: HttpOnly, SameSite=Lax, Secure over https."""
    return {
        "httponly": True,
        "samesite": "Lax",
        "secure": secure,
        "max_age": max_age,
        "path": "/",
    }
