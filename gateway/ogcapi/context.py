"""Per-app state of the OGC API surface and the HTTP helpers its handlers share.

:class:`OgcApi` bundles what handlers need -- the gateway services, the
embedded pygeoapi ``API`` object and the public base URL -- and lives in
``app.extensions["hpcgw.ogcapi"]``; :func:`ogcapi` returns it for the current
request. The helpers decide the response format (``f=json|html`` wins over the
``Accept`` header), render pygeoapi's Jinja templates, build JSON responses and
read the JSON body of an execute request with the right 400/413/415 errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Response, current_app, request
from pygeoapi.api import API, APIRequest
from pygeoapi.util import render_j2_template

from gateway.errors import BadRequest, UnsupportedMediaType
from gateway.http_input import decode_json

if TYPE_CHECKING:
    from gateway.app import Services

EXTENSION_KEY = "hpcgw.ogcapi"
F_JSON = "json"
F_HTML = "html"
JSON = "application/json"
HTML = "text/html; charset=utf-8"


@dataclass
class OgcApi:
    """What the OGC API handlers of one app share."""

    services: Services
    api: API
    base_url: str

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def render(self, template: str, data: dict[str, Any]) -> str:
        """Render one of pygeoapi's Jinja templates with its usual ``config``/``data``."""
        locale = APIRequest.from_flask(request, self.api.locales).locale
        return str(
            render_j2_template(
                self.api.tpl_config,
                self.api.config["server"]["templates"],
                template,
                data,
                locale,
            )
        )


def ogcapi() -> OgcApi:
    state = current_app.extensions[EXTENSION_KEY]
    assert isinstance(state, OgcApi)
    return state


def response_format() -> str:
    """``json`` or ``html``: the ``f`` parameter, else the ``Accept`` header, else JSON."""
    f = request.args.get("f")
    if f is not None:
        f = f.strip().lower()
        if f not in (F_JSON, F_HTML):
            raise BadRequest(f"unsupported format f={f!r}; use f=json or f=html")
        return f
    best = request.accept_mimetypes.best_match([JSON, "text/html"], default=JSON)
    return F_HTML if best == "text/html" else F_JSON


def json_response(
    document: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
    content_type: str = JSON,
) -> Response:
    try:
        body = json.dumps(document, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate stored before input was strict: escape it
        body = json.dumps(document, default=str).encode("ascii")
    return Response(body, status=status, headers=headers or {}, content_type=content_type)


def html_response(html: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(html, status=status, headers=headers or {}, content_type=HTML)


def read_json_body() -> Any:
    """The decoded JSON request body (execute requests).

    A body with an explicit non-JSON ``Content-Type`` is refused with 415; a
    missing ``Content-Type`` is tolerated and the body parsed as strict JSON
    (:func:`gateway.http_input.decode_json`: 400 naming the offending value).
    Bodies over the size limit, sized or chunked, are refused with 413
    (:mod:`gateway.http_input`).
    """
    mimetype = request.mimetype
    if mimetype and mimetype != JSON and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(
            f"the execute request must be sent as {JSON}, not {request.content_type}"
        )
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise BadRequest("the request body is empty; send a JSON execute request")
    return decode_json(raw)


def preferences() -> dict[str, str | None]:
    """The preferences of the ``Prefer`` header(s) (RFC 7240 section 2), name -> value.

    Names are lower-cased; a value's optional quotes are removed; a preference
    without ``=value`` maps to None. Preference parameters (after ``;``) are
    dropped -- none of ours takes any. A preference given more than once counts
    only in its first instance (RFC 7240: "only the first instance is to be
    considered"), whether repeated in one header or across several.
    """
    found: dict[str, str | None] = {}
    for header in request.headers.getlist("Prefer"):
        for item in header.split(","):
            head = item.split(";", 1)[0]
            name, sep, value = head.partition("=")
            name = name.strip().lower()
            if not name or name in found:
                continue
            found[name] = value.strip().strip('"') if sep else None
    return found


def prefer_tokens() -> set[str]:
    """The preference names of the ``Prefer`` header (RFC 7240), lower-cased."""
    return set(preferences())


def prefer_wait() -> int | None:
    """The ``wait`` preference in seconds (RFC 7240 section 4.3), or None.

    ``wait = delta-seconds`` (one or more ASCII digits); any other value is an
    invalid preference, which RFC 7240 lets a server ignore -- so it is ignored
    (never an error: a preference is a hint, not part of the request).
    """
    raw = preferences().get("wait")
    if raw is None or not raw.isascii() or not raw.isdigit():
        return None
    return int(raw)
