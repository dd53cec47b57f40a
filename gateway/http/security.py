"""Who is asking, resolved once per request, and which paths are public.

A ``before_request`` hook calls ``authenticator.authenticate(request.headers)``
exactly once per request and keeps the :class:`~gateway.identity.auth.Principal` on
``flask.g``; handlers (and the pygeoapi manager plugin) read it with
:func:`request_principal` / :func:`current_principal`. Authentication errors
(:class:`~gateway.errors.Unauthorized`, ``Forbidden``) propagate to the OGC
error handler like any other :class:`~gateway.errors.GatewayError`.

:data:`DEFAULT_PUBLIC_PATHS` is the one place listing what anonymous clients
may read; ``register_ogcapi(..., public_paths=...)`` overrides it (the OIDC
work passes its own list from settings).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import cast

from flask import Flask, g, has_request_context, request

from gateway.errors import Unauthorized
from gateway.identity.auth import Authenticator, Principal

#: Paths served without authentication. An entry ending in ``/`` is a prefix.
DEFAULT_PUBLIC_PATHS: tuple[str, ...] = ("/", "/conformance", "/openapi", "/static/")

_G_KEY = "hpcgw_principal"


class PublicPaths:
    """Exact paths plus prefixes (entries ending in ``/``, except ``/`` itself)."""

    def __init__(self, paths: Iterable[str]) -> None:
        entries = [p if p.startswith("/") else "/" + p for p in paths]
        self.exact = frozenset(entries)
        self.prefixes = tuple(p for p in entries if p.endswith("/") and p != "/")

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str):
            return False
        trimmed = path.rstrip("/") or "/"
        return path in self.exact or trimmed in self.exact or path.startswith(self.prefixes)


def install_authentication(
    app: Flask, authenticator: Authenticator, public_paths: Iterable[str]
) -> PublicPaths:
    """Resolve the caller before every request (except public paths)."""
    public = PublicPaths(public_paths)

    @app.before_request
    def _resolve_principal() -> None:
        if request.path in public:
            return
        # werkzeug's Headers: a case-insensitive mapping of str to str.
        headers = cast(Mapping[str, str], request.headers)
        setattr(g, _G_KEY, authenticator.authenticate(headers))

    return public


def request_principal() -> Principal | None:
    """The caller of the current request, or None (public path / no request)."""
    if not has_request_context():
        return None
    principal = g.get(_G_KEY)
    return principal if isinstance(principal, Principal) else None


def current_principal() -> Principal:
    """The caller of the current request; handlers on protected paths only."""
    principal = request_principal()
    if principal is None:
        raise Unauthorized("this resource requires an authenticated user")
    return principal
