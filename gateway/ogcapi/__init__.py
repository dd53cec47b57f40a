"""OGC API - Processes - Part 1: Core (OGC 18-062r2, 1.0) on Flask, embedding pygeoapi.

:func:`register_ogcapi` is called once by the composition root
(:func:`gateway.app.create_app`). It builds pygeoapi's ``API`` from a generated
config (no global config file, never ``pygeoapi.flask_app``), with our manager
and processor plugins reaching the live services through a token
(:mod:`gateway.ogcapi.plugin_context`), then installs authentication, the OGC
exception handlers and the routes:

=========================================  ===================================
``GET /``, ``/conformance``, ``/openapi``  discovery (public by default)
``GET /processes``, ``/processes/{id}``    process list / description (public by default)
``POST /processes/{id}/execution``         execute (sync, or async on Prefer)
``GET /jobs``                              job list (limit, processID, status)
``GET|DELETE /jobs/{id}``                  status info / dismiss
``GET /jobs/{id}/results``                 results (document, raw, multipart)
``GET /jobs/{id}/outputs/{file}``          published output files
``POST /processes``, ``PUT|DELETE
/processes/{id}``, ``GET
/processes/{id}/package``                  Part 2: deploy/replace/undeploy (routes_deploy)
``GET /stac/catalog.json``                 STAC Catalog of the caller's results
``GET /stac/items/{id}.json``              STAC Item of one job's results
=========================================  ===================================

Module map: ``config`` (pygeoapi config + OpenAPI), ``plugin_context``,
``manager``, ``processor`` (pygeoapi plugins), ``security`` (Principal per
request, public paths), ``problems`` (errors), ``context`` (per-app state and
HTTP helpers), ``documents`` (JSON documents), ``results`` (results
encodings), ``routes_discovery`` and ``routes_jobs`` (handlers).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pygeoapi
from flask import Flask
from pygeoapi.api import API

from gateway.http.security import DEFAULT_PUBLIC_PATHS, BrowserHook, install_authentication
from gateway.identity.auth import Authenticator
from gateway.ogcapi.config import openapi_document, pygeoapi_config
from gateway.ogcapi.context import EXTENSION_KEY, OgcApi
from gateway.ogcapi.plugin_context import register_services
from gateway.ogcapi.problems import install_error_handlers
from gateway.ogcapi.routes_deploy import blueprint as deploy_blueprint
from gateway.ogcapi.routes_discovery import blueprint as discovery_blueprint
from gateway.ogcapi.routes_jobs import blueprint as jobs_blueprint
from gateway.ogcapi.routes_stac import blueprint as stac_blueprint
from gateway.services import Services

__all__ = ["DEFAULT_PUBLIC_PATHS", "register_ogcapi"]

#: pygeoapi's CSS and images, referenced by its HTML templates as /static/...
PYGEOAPI_STATIC = Path(pygeoapi.__file__).resolve().parent / "static"


def _quiet_api(config: dict[str, Any], openapi: dict[str, Any]) -> API:
    """``API(config, openapi)`` without its ``logging.basicConfig`` side effect.

    pygeoapi configures the root logger when nothing has yet; a NullHandler held
    on the root logger during construction makes that a no-op, so logging stays
    whatever the application (``hpcgw serve``, pytest) sets up.
    """
    root = logging.getLogger()
    guard = logging.NullHandler()
    root.addHandler(guard)
    try:
        return API(config, openapi)
    finally:
        root.removeHandler(guard)


class _Resources(dict[str, Any]):
    """pygeoapi's ``resources`` config, answering ``{}`` for a process it was not built with.

    pygeoapi reads ``config['resources'][id]`` (templates) when it renders a
    process description as HTML; deployed processes (Part 2) come and go after
    the API is built, so they have no entry there and get pygeoapi's defaults.
    """

    def __missing__(self, key: str) -> dict[str, Any]:
        return {}


def register_ogcapi(
    app: Flask,
    services: Services,
    authenticator: Authenticator,
    public_paths: Iterable[str] = DEFAULT_PUBLIC_PATHS,
    browser: BrowserHook | None = None,
) -> OgcApi:
    """Mount the OGC API - Processes surface on ``app``; returns its per-app state."""
    token = register_services(services)
    config = pygeoapi_config(services.settings, services.registry, token)
    public_paths = tuple(public_paths)
    api = _quiet_api(config, openapi_document(config, services.settings, public_paths))
    api.config["resources"] = _Resources(api.config["resources"])
    state = OgcApi(
        services=services,
        api=api,
        base_url=api.base_url.rstrip("/"),
        authenticator=authenticator,
    )
    app.extensions[EXTENSION_KEY] = state
    # pygeoapi's templates link {base_url}/static/...: point the app's own /static
    # route (Flask reads static_folder at request time) at pygeoapi's files.
    app.static_folder = str(PYGEOAPI_STATIC)
    # pygeoapi.l10n warns on every JSON-schema keyword of a process description.
    logging.getLogger("pygeoapi.l10n").setLevel(logging.ERROR)
    install_authentication(app, authenticator, public_paths, browser)
    install_error_handlers(app)
    app.register_blueprint(discovery_blueprint)
    app.register_blueprint(deploy_blueprint)
    app.register_blueprint(jobs_blueprint)
    app.register_blueprint(stac_blueprint)
    return state
