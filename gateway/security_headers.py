"""Response headers that make the gateway's pages safe to open in a browser.

The one escaping rule for HTML is Jinja's autoescape: every value reaches a page
as text, and no template puts data into a ``<script>`` (the job pages override
pygeoapi's, which did; see ``gateway/ogcapi/templates``). The
Content-Security-Policy below is the second line: even a value that slipped
through as markup could not run, because no inline script, no ``eval`` and no
script from elsewhere is allowed. Styles may come from this server and from the
CDN pygeoapi's base template links Bootstrap's CSS from; images from this server.

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
        "style-src 'self' https://unpkg.com",
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


def install_security_headers(app: Flask) -> None:
    """Every response of ``app`` carries :data:`SECURITY_HEADERS`."""
    app.after_request(add_security_headers)
