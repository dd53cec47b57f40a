"""The composition root: the ONE place where the gateway's parts are built and wired.

``build_services(settings)`` creates the engine, job store, process registry,
site adapters and job service; ``create_app(settings)`` puts the HTTP surfaces
on top. Nothing else constructs these objects, so tests and the CLI get
exactly what production gets.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from sqlalchemy.engine import Engine

from gateway import db
from gateway.jobs.store import JobStore
from gateway.service import JobService
from gateway.settings import Settings
from gateway.sites import Sites
from processes.registry import ProcessRegistry

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Everything the HTTP surfaces and the worker share."""

    settings: Settings
    engine: Engine
    store: JobStore
    registry: ProcessRegistry
    sites: Sites
    jobs: JobService

    @property
    def publication_root(self) -> Path:
        return Path(self.settings.publication.root).resolve()

    def close(self) -> None:
        self.sites.close()
        self.engine.dispose()


def build_services(settings: Settings) -> Services:
    """Create and wire the gateway's parts from settings (no HTTP, no threads)."""
    if settings.database.auto_upgrade:
        db.upgrade(settings.database.url)
    engine = db.make_engine(settings.database.url, settings.database.pool_size)
    store = JobStore(engine)
    registry = ProcessRegistry.builtin(settings.processes)
    sites = Sites(settings.sites)
    jobs = JobService(store, registry, sites, settings.default_site)
    return Services(settings, engine, store, registry, sites, jobs)


def create_app(settings: Settings, services: Services | None = None) -> Flask:
    """The WSGI application: OGC API - Processes (pygeoapi-based) over the job service."""
    from gateway.auth import build_authenticator
    from gateway.ogcapi import register_ogcapi
    from gateway.usersync.admin_api import blueprint as admin_users_blueprint
    from gateway.wps import register_wps

    services = services or build_services(settings)
    app = Flask("gateway")
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_body_bytes
    app.extensions["hpcgw"] = services
    authenticator = build_authenticator(settings.auth, services.engine)
    register_ogcapi(app, services, authenticator, public_paths=settings.auth.public_paths)
    register_wps(app, services, authenticator)
    app.register_blueprint(admin_users_blueprint)
    return app
