"""The gateway's pages for people in a browser (a surface; docs/web.md).

Module map: ``tables`` (the session table), ``sessions`` (server-side sessions,
CSRF token), ``signin`` (the OIDC client: code + PKCE, refresh, sign-out),
``browser`` (sessions in the request cycle: token for the authenticator, CSRF,
the sign-in redirect), ``forms`` (execution forms from process descriptions),
``context`` (per-app state, page context, error pages), ``surface``
(``register_web``), ``auth_routes``
(``/signin``, ``/signin/callback``, ``/ui/signout``), ``pages`` (processes and
jobs), ``admin_pages`` (site health, user sync, everyone's jobs).
"""
