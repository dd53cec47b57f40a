"""Who is asking, resolved once per request, and which paths are public.

A ``before_request`` hook calls ``authenticator.authenticate(request.headers)``
exactly once per request and keeps the :class:`~gateway.identity.auth.Principal` on
``flask.g``; handlers (and the pygeoapi manager plugin) read it with
:func:`request_principal` / :func:`current_principal`. Authentication errors
(:class:`~gateway.errors.Unauthorized`, ``Forbidden``) propagate to the OGC
error handler like any other :class:`~gateway.errors.GatewayError`.

:data:`DEFAULT_PUBLIC_PATHS` is the one place listing what anonymous clients
may read; ``register_ogcapi(..., public_paths=...)`` overrides it (the
composition root passes :func:`public_paths_of` the settings). Discovery --
the process list and descriptions, and the ``/wps`` endpoint, whose
GetCapabilities and DescribeProcess portals and generic WPS clients harvest
without credentials -- is public too unless ``auth.public_discovery`` is off
(:data:`DISCOVERY_PATHS`). Everything that creates, reads or changes a job stays
authenticated: ``POST /processes/{id}/execution`` is not under a public path, and
the WPS endpoint authenticates Execute, GetStatus, GetResult and Dismiss itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, cast

from flask import Flask, g, has_request_context, request
from werkzeug.wrappers import Response

from gateway.errors import Unauthorized
from gateway.identity.auth import Authenticator, Principal
from gateway.logs import bind_job, bind_user
from gateway.settings import AuthSettings

#: Paths served without authentication. An entry ending in ``/`` is a prefix; a
#: ``*`` segment matches any one path segment.
DEFAULT_PUBLIC_PATHS: tuple[str, ...] = ("/", "/conformance", "/openapi", "/static/")
#: Discovery, public while ``auth.public_discovery`` is on (the default).
DISCOVERY_PATHS: tuple[str, ...] = ("/processes", "/processes/*", "/wps")

_G_KEY = "hpcgw_principal"


def public_paths_of(auth: AuthSettings) -> list[str]:
    """The public paths ``auth`` configures: its own list, plus discovery unless turned off."""
    return [*auth.public_paths, *(DISCOVERY_PATHS if auth.public_discovery else ())]


class PublicPaths:
    """Exact paths, prefixes (entries ending in ``/``, except ``/`` itself) and
    patterns (entries with a ``*`` segment, which matches one non-empty segment)."""

    def __init__(self, paths: Iterable[str]) -> None:
        entries = [p if p.startswith("/") else "/" + p for p in paths]
        self.exact = frozenset(e for e in entries if "*" not in e.split("/"))
        self.prefixes = tuple(p for p in self.exact if p.endswith("/") and p != "/")
        self.patterns = tuple(e.strip("/").split("/") for e in entries if "*" in e.split("/"))

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str):
            return False
        trimmed = path.rstrip("/") or "/"
        if path in self.exact or trimmed in self.exact or path.startswith(self.prefixes):
            return True
        segments = trimmed.strip("/").split("/")
        return any(_matches(pattern, segments) for pattern in self.patterns)


def _matches(pattern: list[str], segments: list[str]) -> bool:
    return len(pattern) == len(segments) and all(
        (want == "*" and bool(got)) or want == got
        for want, got in zip(pattern, segments, strict=True)
    )


class BrowserHook(Protocol):
    """What the hook asks of browser sessions (:class:`gateway.web.browser.BrowserAuth`)."""

    def headers_for(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        """The headers to authenticate: a session's bearer token added, CSRF checked."""
        ...

    def unauthenticated(self) -> Response | None:
        """The sign-in redirect for a page request without a session, or None (401)."""
        ...


def install_authentication(
    app: Flask,
    authenticator: Authenticator,
    public_paths: Iterable[str],
    browser: BrowserHook | None = None,
) -> PublicPaths:
    """Resolve the caller before every request (except public paths).

    With ``browser``, a request without an ``Authorization`` header is
    authenticated by its session cookie, and a page request without a session
    is redirected to sign-in instead of answering 401.
    """
    public = PublicPaths(public_paths)

    @app.before_request
    def _resolve_principal() -> Response | None:
        # log lines of this request name its job and caller (threads serve many requests)
        args = request.view_args or {}
        job_id = args.get("job_id") or args.get("jobId")
        bind_job(job_id if isinstance(job_id, str) else None)
        bind_user(None)
        if request.path in public:
            return None
        # werkzeug's Headers: a case-insensitive mapping of str to str.
        headers = cast(Mapping[str, str], request.headers)
        if browser is not None:
            headers = browser.headers_for(headers)
        try:
            principal = authenticator.authenticate(headers)
        except Unauthorized:
            redirect = browser.unauthenticated() if browser is not None else None
            if redirect is None:
                raise
            return redirect
        setattr(g, _G_KEY, principal)
        bind_user(principal.username)
        return None

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
