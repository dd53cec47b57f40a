"""How pygeoapi plugins reach the gateway's live services.

pygeoapi builds its process manager and processors itself, from the config
dict (``load_plugin(type, definition)`` calls ``Class(definition)``), so the
plugins cannot receive our :class:`~gateway.services.Services` as a constructor
argument. Instead :func:`register_services` stores the services object under a
random token and the generated config carries that token (key
:data:`TOKEN_KEY`) in ``server.manager`` and in every ``processor`` entry; the
plugins call :func:`services_for` with it.

The registry holds *weak* references: the Flask app owns its services
(``app.extensions["hpcgw"]``), and a test suite that builds hundreds of apps
does not keep their engines alive through this module.
"""

from __future__ import annotations

import secrets
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from gateway.services import Services

#: The key, in a pygeoapi plugin definition, that names the services token.
TOKEN_KEY = "hpcgw_services"  # noqa: S105 - a config key, not a secret

_lock = threading.Lock()
_registry: weakref.WeakValueDictionary[str, Services] = weakref.WeakValueDictionary()


class UnknownServicesToken(LookupError):
    """A plugin definition names no (or no longer) registered services object."""


def register_services(services: Services) -> str:
    """Keep ``services`` reachable by plugins; returns the token to put in the config."""
    token = secrets.token_hex(12)
    with _lock:
        _registry[token] = services
    return token


def services_for(plugin_def: Mapping[str, Any]) -> Services:
    """The services named by a pygeoapi plugin definition's :data:`TOKEN_KEY`."""
    token = plugin_def.get(TOKEN_KEY)
    with _lock:
        services = _registry.get(token) if isinstance(token, str) else None
    if services is None:
        raise UnknownServicesToken(
            f"pygeoapi plugin definition has no live '{TOKEN_KEY}' token; "
            "gateway plugins only work inside an app built by gateway.app.create_app"
        )
    return services


#: The processor plugin every gateway process is described by.
PROCESSOR_PLUGIN = "gateway.ogcapi.processor.HpcProcessor"


def processor_entry(process_id: str, token: Any) -> dict[str, Any]:
    """pygeoapi's ``processor`` definition of one gateway process."""
    return {"name": PROCESSOR_PLUGIN, "process_id": process_id, TOKEN_KEY: token}
