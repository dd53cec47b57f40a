"""The web surface's mounting (called by the composition root).

Pages live under ``/ui/``, their own CSS/JS and the npm assets under
``/assets/`` (public, like ``/static/``), sign-in at ``/signin``. Errors on a
page render an HTML page with the status and a plain message: never a stack
trace (a 500 is logged, the page says only that something went wrong).
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, g, send_from_directory
from werkzeug.wrappers import Response

from gateway.services import Services
from gateway.web.admin_pages import blueprint as admin_blueprint
from gateway.web.auth_routes import blueprint as auth_blueprint
from gateway.web.browser import BrowserAuth
from gateway.web.context import EXTENSION_KEY, Web, page_context, web
from gateway.web.pages import blueprint as pages_blueprint

STATIC = Path(__file__).resolve().parent / "static"
#: Served without a session: sign-in and its callback, the pages' assets.
PUBLIC_PATHS = ("/signin", "/signin/callback", "/signed-out", "/assets/")


def register_web(app: Flask, services: Services, browser: BrowserAuth) -> Web:
    """Mount the pages, sign-in and the assets on ``app``."""
    state = Web(services=services, browser=browser)
    app.extensions[EXTENSION_KEY] = state
    for bp in (auth_blueprint, pages_blueprint, admin_blueprint):
        app.register_blueprint(bp)
    app.add_url_rule(
        "/assets/<path:filename>", "web_assets", _asset, methods=["GET"], strict_slashes=False
    )
    app.after_request(_new_session_cookie)
    app.context_processor(page_context)
    return state


def _asset(filename: str) -> Response:
    return send_from_directory(STATIC, filename, max_age=3600)


def _new_session_cookie(response: Response) -> Response:
    """A session created during the request (a form's CSRF token) reaches the browser."""
    created = g.get("hpcgw_new_cookie")
    if created is not None:
        web().set_cookie(response, created.id, None)
    return response
