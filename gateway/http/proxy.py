"""Forwarded headers from trusted reverse proxies only (``server.trusted_proxies``).

Behind nginx the gateway sees the proxy as its peer, ``http`` as the scheme and
the proxy's upstream address as the host. Werkzeug's ``ProxyFix`` rewrites the
WSGI environ from ``X-Forwarded-For/Proto/Host/Port/Prefix`` so that Flask sees
the client, the public scheme and host and the path prefix (``SCRIPT_NAME``):
redirects and anything built from the request then carry the public URL.

Anyone can send those headers, so :class:`TrustedProxyFix` applies ``ProxyFix``
only when the peer address (``REMOTE_ADDR``) is in the configured list, and
removes the headers from every other request, so nothing downstream can read a
forged one. The links in documents come from ``server.base_url`` (the worker
writes them too, without a request); when a trusted proxy forwards another
public root than that (in its headers), the mismatch is logged once, as it
means wrong links.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wsgi import get_host

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: ``True`` in the WSGI environ of a request forwarded by a trusted proxy.
PROXIED = "hpcgw.proxied"
_FORWARDED_PREFIX = "HTTP_X_FORWARDED_"


class TrustedProxyFix:
    """WSGI middleware: ``ProxyFix`` (one hop) for trusted peers; others lose the headers."""

    def __init__(
        self, app: WSGIApplication, trusted: Iterable[Network | str], base_url: str
    ) -> None:
        self.app = app
        self.trusted = [ipaddress.ip_network(n, strict=False) for n in trusted]
        self.fixed = ProxyFix(app, x_for=1, x_proto=1, x_host=1, x_port=1, x_prefix=1)
        self.base_url = base_url.rstrip("/")
        self._warned = False

    def is_trusted(self, peer: str | None) -> bool:
        try:
            address = ipaddress.ip_address((peer or "").split("%", 1)[0])
        except ValueError:
            return False
        return any(address in network for network in self.trusted)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        forwarded = [k for k in environ if k.startswith(_FORWARDED_PREFIX)]
        if self.is_trusted(environ.get("REMOTE_ADDR")):
            environ[PROXIED] = True
            if forwarded and not self._warned:  # (a local health check forwards nothing)
                start_response = self._checking(environ, start_response)
            return self.fixed(environ, start_response)
        for key in forwarded:
            del environ[key]
        return self.app(environ, start_response)

    def _checking(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        """``start_response`` that first compares the forwarded root with ``base_url`` (once)."""

        def wrapped(*args: Any) -> Any:
            if not self._warned:
                root = public_root(environ)
                if root != self.base_url:
                    self._warned = True
                    log.warning(
                        "the proxy forwards the public URL %s but server.base_url is %s: "
                        "links will say %s (set server.base_url to the public URL)",
                        root,
                        self.base_url,
                        self.base_url,
                    )
            return start_response(*args)

        return wrapped


def public_root(environ: WSGIEnvironment) -> str:
    """``scheme://host[:port]/prefix`` of a request, as the client (after ProxyFix) sees it."""
    return f"{environ['wsgi.url_scheme']}://{get_host(environ)}{environ.get('SCRIPT_NAME', '')}"
