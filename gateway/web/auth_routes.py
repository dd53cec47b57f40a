"""Sign-in, its callback and sign-out.

==============================  ===============================================
``GET /signin?next=/ui/...``    start: a pending session, redirect to the provider
``GET /signin/callback``        the provider's answer: code -> tokens -> session
``POST /ui/signout``            end the session here and at the provider (CSRF)
``GET /signed-out``             the page after sign-out
==============================  ===============================================

The callback checks ``state`` against the pending session, exchanges the code
with the PKCE verifier, checks the ``nonce`` of the ID token and the access
token like any bearer token (the user must hold a gateway role), then replaces
the pending session with a new signed-in one (a new id) and returns to the
page the person asked for.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt
from flask import Blueprint, redirect, render_template, request
from werkzeug.wrappers import Response

from gateway.errors import ServiceUnavailable
from gateway.identity.oidc import ProviderUnavailable
from gateway.web.context import error_page, web
from gateway.web.sessions import COOKIE
from gateway.web.signin import PendingSignIn, SignInFailed, safe_next

blueprint = Blueprint("web_auth", __name__, template_folder="templates")
blueprint.register_error_handler(Exception, error_page)

#: How long a person has to type their password.
PENDING_LIFETIME = timedelta(minutes=15)


@blueprint.get("/signin")
def signin() -> Response:
    state = web()
    next_path = safe_next(request.args.get("next"))
    client = state.browser.client
    session = state.browser.current()
    if client is None or (session is not None and session.signed_in):
        return redirect(request.script_root + next_path, code=303)
    try:
        url, pending = client.start(next_path)
    except ProviderUnavailable as exc:
        raise ServiceUnavailable(f"the sign-in service cannot be reached: {exc}") from None
    data: dict[str, Any] = {"pending": pending.as_dict()}
    if session is not None:  # forms kept across the sign-in
        data["drafts"] = session.data.get("drafts", {})
        state.browser.store.end(session.id)
    new = state.browser.store.create(data, lifetime=PENDING_LIFETIME)
    response = redirect(url, code=303)
    state.set_cookie(response, new.id, None)
    return response


@blueprint.get("/signin/callback")
def callback() -> Response | tuple[str, int]:
    state = web()
    client = state.browser.client
    session = state.browser.current()
    pending = PendingSignIn.from_dict(session.data.get("pending")) if session else None
    if client is None or session is None or pending is None:
        return _again("This sign-in has expired or was started in another browser.")
    if request.args.get("error"):
        return _again(f"The sign-in did not complete ({request.args.get('error')}).")
    code = request.args.get("code", "")
    if request.args.get("state") != pending.state or not code:
        return _again("The answer from the sign-in service does not match this sign-in.")
    try:
        tokens = client.exchange(code, pending.verifier)
    except SignInFailed as exc:
        return _again(str(exc))
    except ProviderUnavailable as exc:
        raise ServiceUnavailable(f"the sign-in service cannot be reached: {exc}") from None
    if _nonce(tokens.get("id_token")) != pending.nonce:
        return _again("The sign-in answer is not for this sign-in (nonce).")
    # the access token as any API client's: issuer, audience, role, HPC account
    principal = state.browser.authenticate_token(str(tokens["access_token"]))
    new = state.browser.store.create(
        {
            "tokens": tokens,
            "username": principal.username,
            "drafts": session.data.get("drafts", {}),
        }
    )
    state.browser.store.end(session.id)
    # next paths are the app's own (without a proxy's prefix): the prefix goes in front
    response = redirect(request.script_root + pending.next_path, code=303)
    state.set_cookie(response, new.id, int(state.browser.store.lifetime.total_seconds()))
    return response


def _nonce(id_token: Any) -> str | None:
    """The ``nonce`` of the ID token received straight from the token endpoint (OIDC
    Core 3.1.3.7: over TLS from the token endpoint, the signature check may be skipped;
    the access token, which grants access, is fully checked)."""
    if not isinstance(id_token, str):
        return None
    try:
        claims = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    nonce = claims.get("nonce")
    return nonce if isinstance(nonce, str) else None


def _again(reason: str) -> tuple[str, int]:
    return render_template("web/signin_failed.html", reason=reason), 400


@blueprint.post("/ui/signout")
def signout() -> Response:
    """End the session (CSRF checked by the authentication hook) here and at the provider."""
    state = web()
    session = state.browser.current()
    if session is not None:
        if state.browser.client is not None and session.tokens:
            state.browser.client.end_session(session.tokens)
        state.browser.store.end(session.id)
    response = redirect(f"{request.script_root}/signed-out", code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@blueprint.get("/signed-out")
def signed_out() -> str:
    return render_template("web/signed_out.html")
