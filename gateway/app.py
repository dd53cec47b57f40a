"""The composition root: the ONE place where the gateway's parts are built and wired.

``build_services(settings)`` creates the engine, job store, process registry,
site adapters and job service; ``create_app(settings)`` puts the HTTP surfaces
on top. Nothing else constructs these objects, so tests and the CLI get
exactly what production gets.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from flask import Flask
from sqlalchemy.engine import Engine

from gateway import db
from gateway.accounting.instrument import instrument_builder
from gateway.accounting.service import Accounting
from gateway.auth import Authenticator
from gateway.egress import EgressPolicy
from gateway.jobs.store import JobStore
from gateway.service import AdmissionHook, JobService
from gateway.settings import Settings
from gateway.sites import Sites, build_adapter
from gateway.staging.admission import reference_admission
from processes.registry import ProcessRegistry

if TYPE_CHECKING:
    from gateway.workflow.publication import Publisher

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
    #: The policy every outbound request on a user's behalf goes through.
    egress: EgressPolicy
    #: Quotes, budgets, usage records and metrics (None when disabled).
    accounting: Accounting | None = None

    @property
    def publication_root(self) -> Path:
        return Path(self.settings.publication.root).resolve()

    @cached_property
    def publisher(self) -> Publisher:
        """Publishes outputs (worker) and gives their S3 download links (HTTP routes)."""
        from gateway.workflow.publication import build_publisher

        return build_publisher(self.settings.publication, self.settings.server.base_url)

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
    from gateway.auth import build_authenticator
    from gateway.http_input import install_body_limit
    from gateway.ogcapi import register_ogcapi
    from gateway.security_headers import install_security_headers
    from gateway.usersync.admin_api import blueprint as admin_users_blueprint
    from gateway.wps import register_wps

    services = services or build_services(settings)
    app = Flask("gateway")
    install_body_limit(app, settings.server.max_body_bytes)
    app.extensions["hpcgw"] = services
    authenticator = authenticator or build_authenticator(settings.auth, services.engine)
    public = [*settings.auth.public_paths, *public_paths(settings)]
    register_ogcapi(app, services, authenticator, public_paths=public)
    register_wps(app, services, authenticator)
    app.register_blueprint(admin_users_blueprint)
    register_accounting(app)
    install_security_headers(app)
    return app
