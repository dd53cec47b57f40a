"""The composition root: the ONE place where the gateway's parts are built and wired.

``build_services(settings)`` creates the engine, job store, process registry,
site adapters and job service; ``create_app(settings)`` puts the HTTP surfaces
on top. Nothing else constructs these objects, so tests and the CLI get
exactly what production gets.
"""

from __future__ import annotations

import logging

from flask import Flask

from gateway import db
from gateway.accounting.instrument import instrument_builder
from gateway.accounting.service import Accounting
from gateway.egress import EgressPolicy
from gateway.identity.auth import Authenticator
from gateway.jobs.service import AdmissionHook, JobService
from gateway.jobs.store import JobStore
from gateway.services import Services
from gateway.settings import Settings
from gateway.sites import Sites, build_adapter
from gateway.staging.admission import reference_admission
from processes.registry import ProcessRegistry

log = logging.getLogger(__name__)


def build_services(settings: Settings) -> Services:
    """Create and wire the gateway's parts from settings (no HTTP, no threads)."""
    if settings.database.auto_upgrade:
        db.upgrade(settings.database.url)
    engine = db.make_engine(settings.database.url, settings.database.pool_size)
    store = JobStore(engine)
    registry = ProcessRegistry.builtin(settings.processes)
    sites = Sites(settings.sites, builder=instrument_builder(build_adapter))
    egress = EgressPolicy.from_settings(settings.workflow.egress)
    admission: list[AdmissionHook] = [reference_admission(settings.workflow, egress)]
    accounting = None
    if settings.accounting.enabled:
        accounting = Accounting(
            settings.accounting, engine, store, sites, settings.sites, settings.default_site
        )
        admission.append(accounting.admit)
    jobs = JobService(store, registry, sites, settings.default_site, admission=admission)
    return Services(settings, engine, store, registry, sites, jobs, egress, accounting)


def create_app(
    settings: Settings,
    services: Services | None = None,
    authenticator: Authenticator | None = None,
) -> Flask:
    """The WSGI application: OGC API - Processes (pygeoapi-based), WPS and admin APIs.

    ``authenticator`` replaces the one built from ``settings.auth`` (tests use it
    to present fixed identities without an identity provider).
    """
    from gateway.accounting.routes import public_paths, register_accounting
    from gateway.identity.auth import build_authenticator
    from gateway.ogcapi import register_ogcapi
    from gateway.usersync.admin_api import blueprint as admin_users_blueprint
    from gateway.wps import register_wps

    services = services or build_services(settings)
    app = Flask("gateway")
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_body_bytes
    app.extensions["hpcgw"] = services
    authenticator = authenticator or build_authenticator(settings.auth, services.engine)
    public = [*settings.auth.public_paths, *public_paths(settings)]
    register_ogcapi(app, services, authenticator, public_paths=public)
    register_wps(app, services, authenticator)
    app.register_blueprint(admin_users_blueprint)
    register_accounting(app)
    return app
