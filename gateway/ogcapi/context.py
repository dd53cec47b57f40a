"""Per-app state of the OGC API surface and the HTTP helpers its handlers share.

:class:`OgcApi` bundles what handlers need -- the gateway services, the
embedded pygeoapi ``API`` object and the public base URL -- and lives in
``app.extensions["hpcgw.ogcapi"]``; :func:`ogcapi` returns it for the current
request. The helpers decide the response format (``f=json|html`` wins over the
``Accept`` header), render pygeoapi's Jinja templates and read the ``Prefer``
header. Building JSON/HTML responses and reading a JSON request body are
protocol-generic and live in :mod:`gateway.http.responses` (re-exported here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app, request
from pygeoapi.api import API, APIRequest
from pygeoapi.util import render_j2_template

from gateway.errors import BadRequest
from gateway.http.responses import HTML, JSON, html_response, json_response, read_json_body
from gateway.identity.auth import Authenticator
from gateway.services import Services

__all__ = [
    "HTML",
    "JSON",
    "OgcApi",
    "html_response",
    "json_response",
    "ogcapi",
    "prefer_tokens",
    "prefer_wait",
    "preferences",
    "read_json_body",
    "response_format",
]

EXTENSION_KEY = "hpcgw.ogcapi"
F_JSON = "json"
F_HTML = "html"


@dataclass
class OgcApi:
    """What the OGC API handlers of one app share."""

    services: Services
    api: API
    base_url: str
    #: Authenticates write requests on public (discovery) paths: Part 2's deploy routes.
    authenticator: Authenticator

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
