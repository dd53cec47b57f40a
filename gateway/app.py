"""The composition root: the ONE place where the gateway's parts are built and wired.

``build_engine(settings)`` migrates (when ``database.auto_upgrade``) and opens
the database; ``build_services(settings)`` creates the engine, job store,
process registry, site adapters and job service (:class:`~gateway.services.Services`);
``build_worker(services)`` puts the worker's stages together;
``create_app(settings)`` puts the HTTP surfaces on top. Nothing else
constructs these objects, so tests, the CLI and the benchmarks get exactly
what production gets. Every part is built with keyword arguments.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from gateway import db
from gateway.accounting.instrument import instrument_builder
from gateway.accounting.quotes import Pricing
from gateway.accounting.service import Accounting
from gateway.apppkg.policy import SiteAbilities
from gateway.apppkg.service import DeployService
from gateway.apppkg.store import DeployedStore
from gateway.egress import EgressPolicy
from gateway.identity.auth import Authenticator
from gateway.identity.identity_map import IdentityStore
from gateway.jobs.service import AdmissionHook, JobService
from gateway.jobs.store import JobStore
from gateway.routing.failover import Rerouter
from gateway.routing.health import HealthProber, HealthStore, HealthView
from gateway.routing.router import Router
from gateway.services import Services
from gateway.settings import Settings
from gateway.sites import Sites, build_adapter
from gateway.staging import build_stager
from gateway.staging.admission import reference_admission
from gateway.staging.raster_size import tile_sizer
from gateway.triggers.poller import FeedPoller
from gateway.triggers.service import TriggerService
from gateway.triggers.store import TriggerStore
from gateway.workflow.batch import toil_step_namer
from gateway.workflow.callbacks import Notifier
from gateway.workflow.dispatcher import Dispatcher
from gateway.workflow.finaliser import Finaliser
from gateway.workflow.monitor import Monitor
from gateway.workflow.retry import RetryPolicy
from gateway.workflow.worker import Cleaner, Worker, new_worker_id
from processes.registry import ProcessRegistry

if TYPE_CHECKING:
    from flask import Flask

    from gateway.web.browser import BrowserAuth

log = logging.getLogger(__name__)


def build_engine(settings: Settings) -> Engine:
    """The database engine, the schema migrated first when ``database.auto_upgrade``."""
    if settings.database.auto_upgrade:
        db.upgrade(settings.database.url)
    return db.make_engine(settings.database.url, settings.database.pool_size)


def build_services(settings: Settings) -> Services:
    """Create and wire the gateway's parts from settings (no HTTP, no threads)."""
    engine = build_engine(settings)
    store = JobStore(engine)
    deployed = DeployedStore(engine)
    registry = ProcessRegistry.builtin(settings.processes).with_deployed(deployed)
    sites = Sites(settings.sites, builder=instrument_builder(build_adapter))
    egress = EgressPolicy.from_settings(settings.workflow.egress)
    admission: list[AdmissionHook] = [reference_admission(settings.workflow, egress)]
    accounting = None
    if settings.accounting.enabled:
        accounting = Accounting(
            settings.accounting,
            engine,
            store,
            sites,
            settings.sites,
            settings.default_site,
            step_name=toil_step_namer(registry, settings.sites),
        )
    health = HealthView(HealthStore(engine), settings.routing.probe_seconds)
    router = Router(
        health=health,
        settings=settings.routing,
        site_settings=settings.sites,
        sites=sites,
        pricing=accounting.pricing if accounting else Pricing(settings.accounting, settings.sites),
        default_site=settings.default_site,
        accounting=accounting,
    )
    jobs = JobService(
        store,
        registry,
        sites,
        settings.default_site,
        admission=admission,
        router=router,
        sizer=tile_sizer(settings.workflow, egress),
    )
    return Services(
        settings=settings,
        engine=engine,
        store=store,
        registry=registry,
        sites=sites,
        jobs=jobs,
        egress=egress,
        accounting=accounting,
        health=health,
        deploy=DeployService(
            deployed,
            registry,
            settings.apppkg,
            SiteAbilities.of(settings.sites),
        ),
        triggers=TriggerService(TriggerStore(engine), jobs, IdentityStore(engine)),
    )


def build_worker(services: Services, *, worker_id: str | None = None) -> Worker:
    """One worker over ``services``: dispatcher, monitor, finaliser, cleaner and extra stages."""
    s = services.settings
    w = s.worker
    wid = worker_id or new_worker_id()
    retry = RetryPolicy(
        store=services.store,
        max_attempts=w.max_attempts,
        base_seconds=w.backoff_base_seconds,
        max_seconds=w.backoff_max_seconds,
        nearline_retry_seconds=s.workflow.staging.nearline_retry_seconds,
        nearline_max_retry_seconds=s.workflow.staging.nearline_max_retry_seconds,
        nearline_max_wait_seconds=s.workflow.staging.nearline_max_wait_seconds,
    )
    publisher = services.publisher
    usage = services.accounting.recorder(wid) if services.accounting else None
    prober = HealthProber(
        services.sites,
        HealthStore(services.engine),
        s.routing.probe_seconds,
        on_change=lambda _health: _forget_readings(services),
    )
    notifier = Notifier(
        store=services.store,
        settings=s.workflow.callbacks,
        policy=services.egress,
        base_url=s.server.base_url,
        worker_id=wid,
    )
    return Worker(
        dispatcher=Dispatcher(
            store=services.store,
            registry=services.registry,
            sites=services.sites,
            stager=build_stager(s.workflow, services.egress),
            retry=retry,
            worker_id=wid,
            batch=w.dispatch_batch,
            lease_seconds=w.lease_seconds,
            threads=w.submit_threads,
            reroute=_rerouter(services),
        ),
        monitor=Monitor(
            store=services.store,
            sites=services.sites,
            worker_id=wid,
            lease_seconds=max(5.0, 5 * w.poll_interval_seconds),
            hooks=[notifier.progress_changed],
            end_records=w.end_records,
            hint_delay=min(w.dispatch_poll_seconds, w.poll_interval_seconds),
            max_hint_delay=w.poll_interval_seconds,
        ),
        finaliser=Finaliser(
            store=services.store,
            registry=services.registry,
            sites=services.sites,
            publisher=publisher,
            retry=retry,
            worker_id=wid,
            max_manifest_bytes=w.max_manifest_bytes,
            lease_seconds=w.lease_seconds,
            hooks=[usage.on_final] if usage else None,
        ),
        cleaner=Cleaner(
            store=services.store, jobs=services.jobs, sites=services.sites, publisher=publisher
        ),
        interval=w.poll_interval_seconds,
        fast_interval=min(w.dispatch_poll_seconds, w.poll_interval_seconds),
        nice=w.nice,
        starters=[prober.run_once],
        extra_stages=[
            *([usage.run_once] if usage else []),
            notifier.run_once,
            *([build_trigger_poller(services, wid).run_once] if services.triggers else []),
        ],
    )


def build_trigger_poller(services: Services, worker_id: str) -> FeedPoller:
    """The worker stage polling trigger feeds (one worker at a time, by a named lease)."""
    assert services.triggers is not None
    return FeedPoller(
        service=services.triggers,
        jobs_store=services.store,
        policy=services.egress,
        settings=services.settings.triggers,
        worker_id=worker_id,
    )


def _forget_readings(services: Services) -> None:
    """A site changed state: the router reads every site afresh at its next decision."""
    if services.jobs.router is not None:
        services.jobs.router.readings.forget()


def _rerouter(services: Services) -> Rerouter | None:
    """Routing's failover for the dispatcher (with several sites and a router)."""
    router = services.jobs.router
    if router is None or services.health is None or len(services.settings.sites) < 2:
        return None
    return Rerouter(services.store, services.registry, router, services.health)


def start_background_worker(services: Services) -> tuple[threading.Thread, threading.Event]:
    """Run a worker in a daemon thread (tests and single-process demos)."""
    stop = threading.Event()
    worker = build_worker(services)
    thread = threading.Thread(
        target=worker.run_forever, args=(stop,), name="hpcgw-worker", daemon=True
    )
    thread.start()
    return thread, stop


def _browser_auth(
    settings: Settings, services: Services, authenticator: Authenticator
) -> BrowserAuth:
    """Browser sessions for the pages; sign-in with OIDC when ``auth.mode`` is ``oidc``."""
    from datetime import timedelta

    from gateway.web.browser import BrowserAuth
    from gateway.web.sessions import SessionStore
    from gateway.web.signin import OidcClient

    store = SessionStore(services.engine, timedelta(hours=settings.web.session_hours))
    client = (
        OidcClient(settings.auth.oidc, settings.web, settings.server.base_url)
        if settings.auth.mode == "oidc"
        else None
    )
    return BrowserAuth(store, client, authenticator)


def _origins(url: str | None) -> tuple[str, ...]:
    """The ``scheme://host[:port]`` of ``url`` (the map tiles' host for the CSP), if any."""
    from urllib.parse import urlsplit

    if not url:
        return ()
    parts = urlsplit(url.replace("{s}", "*"))  # Leaflet's subdomains: a CSP wildcard
    return (f"{parts.scheme}://{parts.netloc}",)


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
    from gateway.http.proxy import TrustedProxyFix
    from gateway.http.security import public_paths_of
    from gateway.http_input import install_body_limit
    from gateway.identity.auth import build_authenticator
    from gateway.ogcapi import register_ogcapi
    from gateway.routing.routes import register_routing
    from gateway.security_headers import install_security_headers
    from gateway.triggers.routes import register_triggers
    from gateway.usersync.admin_api import blueprint as admin_users_blueprint
    from gateway.web.surface import PUBLIC_PATHS as WEB_PUBLIC_PATHS
    from gateway.web.surface import register_web
    from gateway.wps import register_wps

    services = services or build_services(settings)
    from flask import Flask  # only the HTTP processes need Flask: the worker never loads it

    app = Flask("gateway")
    install_body_limit(app, settings.server.max_body_bytes)
    app.extensions["hpcgw"] = services
    authenticator = authenticator or build_authenticator(settings.auth, services.engine)
    browser = _browser_auth(settings, services, authenticator)
    public = [*public_paths_of(settings.auth), *public_paths(settings), *WEB_PUBLIC_PATHS]
    register_ogcapi(app, services, authenticator, public_paths=public, browser=browser)
    register_wps(app, services, authenticator)
    app.register_blueprint(admin_users_blueprint)
    register_accounting(app)
    register_routing(app)
    register_triggers(app)
    register_web(app, services, browser)
    install_security_headers(app, _origins(settings.web.map_tiles_url))
    srv = settings.server
    app.wsgi_app = TrustedProxyFix(app.wsgi_app, srv.trusted_proxies, srv.base_url)  # type: ignore[method-assign]
    return app
