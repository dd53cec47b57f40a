"""What the Flask surfaces share, whatever the protocol.

* :mod:`.security` -- who is asking (one ``authenticate`` per request, kept on
  ``flask.g``) and which paths are public;
* :mod:`.responses` -- JSON/HTML responses and reading a JSON request body;
* :mod:`.proxy` -- ``X-Forwarded-*`` honoured from trusted reverse proxies only.

The surfaces (:mod:`gateway.ogcapi`, :mod:`gateway.wps`,
:mod:`gateway.accounting.routes`, :mod:`gateway.usersync.admin_api`) import
this package; it imports none of them.
"""
