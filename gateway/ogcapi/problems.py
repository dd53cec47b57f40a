"""Every error of the OGC API surface as an OGC exception document.

Responses are RFC 7807 problem documents ``{type, title, status, detail}``
served as ``application/problem+json`` -- including werkzeug's own HTTP errors
(unknown route 404, wrong method 405, body too large 413, ...) and any
unexpected exception, which becomes a 500 that names a reference id logged
with the traceback; the traceback itself never reaches the client.

When the client negotiated HTML (``f=html`` or a browser ``Accept``), the same
error is rendered with pygeoapi's ``exception.html`` template instead.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from gateway.errors import (
    BadRequest,
    GatewayError,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from gateway.http.store_down import STORE_DOWN, store_unavailable
from gateway.ogcapi.context import F_HTML, html_response, json_response, ogcapi

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

_HTTP_ERRORS: dict[int, type[GatewayError]] = {
    400: BadRequest,
    404: NotFound,
    405: MethodNotAllowed,
    406: NotAcceptable,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    503: ServiceUnavailable,
}


def problem_response(
    document: dict[str, Any], status: int, headers: dict[str, str] | None = None
) -> Response:
    """The problem document as JSON, or as HTML when the client asked for HTML."""
    if _wants_html():
        try:
            html = ogcapi().render(
                "exception.html",
                {"code": document.get("title", ""), "description": document.get("detail", "")},
            )
            return html_response(html, status=status, headers=headers)
        except Exception:  # fall back to JSON, never fail the error path
            log.exception("rendering the HTML exception page failed")
    return json_response(document, status=status, headers=headers, content_type=PROBLEM_JSON)


def error_response(error: GatewayError) -> Response:
    return problem_response(error.document(), error.status, dict(error.headers))


def _wants_html() -> bool:
    f = (request.args.get("f") or "").strip().lower()
    if f:
        return f == F_HTML
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def error_for_status(
    status: int, detail: str, title: str | None = None, headers: dict[str, str] | None = None
) -> GatewayError:
    """The gateway error class for an HTTP status (generic one if none fits)."""
    cls = _HTTP_ERRORS.get(status)
    if cls is not None:
        return cls(detail, headers=headers)
    error = GatewayError(detail, headers=headers)
    error.status = status
    error.title = title or error.title
    return error


def _from_http_exception(exc: HTTPException) -> GatewayError:
    status = exc.code or 500
    description = exc.description or exc.name
    headers: dict[str, str] = {}
    if status == 405:
        allowed = getattr(exc, "valid_methods", None) or []
        if allowed:
            headers["Allow"] = ", ".join(sorted(allowed))
        description = f"method {request.method} is not allowed on {request.path}"
    elif status == 404:
        description = f"no resource at {request.path}"
    elif status == 413:
        description = "the request body is larger than this server accepts"
    return error_for_status(status, description, exc.name, headers)


def install_error_handlers(app: Flask) -> None:
    """Register the handlers; every error path answers an OGC exception document."""

    @app.errorhandler(GatewayError)
    def _gateway_error(exc: GatewayError) -> Response:
        if exc.status >= 500:
            log.error("%s %s -> %s: %s", request.method, request.path, exc.status, exc.detail)
        return error_response(exc)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        return error_response(_from_http_exception(exc))

    def _store_down(exc: Exception) -> Response:
        return error_response(store_unavailable(exc))

    for store_error in STORE_DOWN:
        app.register_error_handler(store_error, _store_down)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        reference = uuid.uuid4().hex[:12]
        log.exception("unexpected error [%s] on %s %s", reference, request.method, request.path)
        error = GatewayError(
            f"the server could not complete the request (error reference {reference}); "
            "the details are in the server log"
        )
        return error_response(error)
