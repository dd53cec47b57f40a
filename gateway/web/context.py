"""What the pages share: the per-app state, the page context, the error page.

Kept apart from :mod:`gateway.web.surface` (which mounts the blueprints) so that the
page modules import it without a cycle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import current_app, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from gateway.errors import GatewayError
from gateway.http.security import request_principal
from gateway.services import Services
from gateway.web.browser import BrowserAuth, cookie_args
from gateway.web.sessions import COOKIE, CSRF_FIELD

log = logging.getLogger(__name__)

EXTENSION_KEY = "hpcgw_web"


@dataclass(frozen=True)
class Web:
    """What the pages share: the services, the browser sessions, the settings they show."""

    services: Services
    browser: BrowserAuth

    @property
    def secure_cookie(self) -> bool:
        """Secure when served over https (directly, or behind a trusted TLS proxy)."""
        return request.is_secure or self.services.settings.server.base_url.startswith("https:")

    def set_cookie(self, response: Response, session_id: str, max_age: int | None) -> None:
        response.set_cookie(COOKIE, session_id, **cookie_args(self.secure_cookie, max_age))


def web() -> Web:
    state = current_app.extensions[EXTENSION_KEY]
    assert isinstance(state, Web)
    return state


def page_context() -> dict[str, Any]:
    state = current_app.extensions.get(EXTENSION_KEY)
    if not isinstance(state, Web):
        return {}
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
