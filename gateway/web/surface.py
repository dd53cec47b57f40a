"""The web surface's state and its mounting (called by the composition root).

Pages live under ``/ui/``, their own CSS/JS and the npm assets under
``/assets/`` (public, like ``/static/``), sign-in at ``/signin``. Errors on a
page render an HTML page with the status and a plain message: never a stack
trace (a 500 is logged, the page says only that something went wrong).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g, render_template
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from gateway.errors import GatewayError
from gateway.services import Services
from gateway.web.browser import BrowserAuth, cookie_args
from gateway.web.sessions import COOKIE, CSRF_FIELD

log = logging.getLogger(__name__)

EXTENSION_KEY = "hpcgw_web"
STATIC = Path(__file__).resolve().parent / "static"
#: Served without a session: sign-in and its callback, the pages' assets.
PUBLIC_PATHS = ("/signin", "/signin/callback", "/signed-out", "/assets/")


@dataclass(frozen=True)
class Web:
    """What the pages share: the services, the browser sessions, the settings they show."""

    services: Services
    browser: BrowserAuth

    @property
    def secure_cookie(self) -> bool:
        return self.services.settings.server.base_url.startswith("https:")

    def set_cookie(self, response: Response, session_id: str, max_age: int | None) -> None:
        response.set_cookie(COOKIE, session_id, **cookie_args(self.secure_cookie, max_age))


def web() -> Web:
    state = current_app.extensions[EXTENSION_KEY]
    assert isinstance(state, Web)
    return state


def register_web(app: Flask, services: Services, browser: BrowserAuth) -> Web:
    """Mount the pages, sign-in and the assets on ``app``."""
    from gateway.web.admin_pages import blueprint as admin_blueprint
    from gateway.web.auth_routes import blueprint as auth_blueprint
    from gateway.web.pages import blueprint as pages_blueprint

    state = Web(services=services, browser=browser)
    app.extensions[EXTENSION_KEY] = state
    for bp in (auth_blueprint, pages_blueprint, admin_blueprint):
        bp.register_error_handler(Exception, error_page)
        app.register_blueprint(bp)
    app.add_url_rule(
        "/assets/<path:filename>", "web_assets", _asset, methods=["GET"], strict_slashes=False
    )
    app.after_request(_new_session_cookie)
    app.context_processor(_page_context)
    return state


def _asset(filename: str) -> Response:
    from flask import send_from_directory

    return send_from_directory(STATIC, filename, max_age=3600)


def _new_session_cookie(response: Response) -> Response:
    """A session created during the request (a form's CSRF token) reaches the browser."""
    created = g.get("hpcgw_new_cookie")
    if created is not None:
        web().set_cookie(response, created.id, None)
    return response


def _page_context() -> dict[str, Any]:
    state = current_app.extensions.get(EXTENSION_KEY)
    if not isinstance(state, Web):
        return {}
    from gateway.http.security import request_principal

    principal = request_principal()
    session = state.browser.current()
    return {
        "principal": principal,
        "signed_in": principal is not None and (session is not None and session.signed_in),
        "oidc": state.browser.client is not None,
        "csrf_field": CSRF_FIELD,
        "csrf_token": csrf_token,
        "accounting_on": state.services.accounting is not None,
        "title": state.services.settings.server.title,
    }


def csrf_token() -> str:
    """The CSRF token for this page's forms (a session is created if there is none)."""
    return web().browser.form_session().csrf


def error_page(exc: Exception) -> tuple[str, int]:
    """An HTML error page: the status and a message, never a trace."""
    if isinstance(exc, GatewayError):
        status, heading, detail = exc.status, exc.title, str(exc)
    elif isinstance(exc, HTTPException):
        status, heading, detail = exc.code or 500, exc.name, exc.description or ""
    else:
        log.exception("page failed")
        status, heading, detail = 500, "Something went wrong", "The error has been logged."
    if status == 404 and not detail:
        detail = "There is no such page."
    return render_template("web/error.html", status=status, heading=heading, detail=detail), status
