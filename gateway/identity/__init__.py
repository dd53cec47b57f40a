"""Who a caller is and which HPC account they act as.

* :mod:`.auth` -- :class:`~gateway.identity.auth.Principal`, the
  authenticators (OIDC bearer tokens, or a fixed user) and the role checks;
* :mod:`.oidc` -- OpenID Connect discovery, JWKS and token validation;
* :mod:`.identity_map` -- portal user -> HPC login (the ``identity.rule``)
  and the store of provisioned logins that the user sync fills.

No HTTP framework here: :mod:`gateway.http.security` calls the authenticator
once per request.
"""
