"""Response headers that make the gateway's pages safe to open in a browser.

The one escaping rule for HTML is Jinja's autoescape: every value reaches a page
as text, and no template puts data into a ``<script>`` (the job pages override
pygeoapi's, which did; see ``gateway/ogcapi/templates``). The
Content-Security-Policy below is the second line: even a value that slipped
through as markup could not run, because no inline script, no ``eval`` and no
script from elsewhere is allowed. Styles and images come from this server only
(Bootstrap and Leaflet are served from ``/assets/vendor``, see ``make web-assets``),
plus the map tiles' host when ``web.map_tiles_url`` names one.

Every response gets the headers (a JSON document opened in a browser tab is a
page too); ones a route set itself are kept.
"""

from __future__ import annotations

from flask import Flask, Response

#: Scripts only from this server (pygeoapi's inline scripts are blocked: the pages
#: work without them), nothing framed, no plugins, forms post back here only.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def add_security_headers(response: Response) -> Response:
    """The headers above, on ``response`` (an ``after_request`` hook)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def install_security_headers(app: Flask, image_origins: tuple[str, ...] = ()) -> None:
    """Every response of ``app`` carries :data:`SECURITY_HEADERS` (``image_origins``:
    hosts images may also come from, e.g. the configured map tiles)."""
    if not image_origins:
        app.after_request(add_security_headers)
        return
    extra = " ".join(image_origins)
    policy = CONTENT_SECURITY_POLICY.replace(
        "img-src 'self' data:", f"img-src 'self' data: {extra}"
    )
    headers = {**SECURITY_HEADERS, "Content-Security-Policy": policy}

    def _add(response: Response) -> Response:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response

    app.after_request(_add)
