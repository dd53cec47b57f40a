"""The shared parts of a running gateway, as one record: :class:`Services`.

A leaf module: it names the parts (settings, engine, job store, process
registry, sites, job service, egress policy, accounting, publisher,
triggers) but
builds none of them -- :func:`gateway.app.build_services` does. The HTTP
surfaces (``gateway.ogcapi``, ``gateway.wps``, ``gateway.accounting.routes``,
``gateway.usersync.admin_api``) and the worker import this module; it
imports no surface, so nothing points back at :mod:`gateway.app`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from gateway.egress import EgressPolicy
from gateway.jobs.service import JobService
from gateway.jobs.store import JobStore
from gateway.settings import Settings
from gateway.sites import Sites
from processes.registry import ProcessRegistry

if TYPE_CHECKING:
    from gateway.accounting.service import Accounting
    from gateway.apppkg.service import DeployService
    from gateway.publication.publisher import Publisher
    from gateway.routing.health import HealthView
    from gateway.triggers.service import TriggerService


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
    #: Every site's latest health probe (routing; written by the worker's prober).
    health: HealthView | None = None
    #: Deploy/replace/undeploy of CWL application packages (OGC API - Processes Part 2).
    deploy: DeployService | None = None
    #: Stored rules that start jobs on events (``/triggers``; polled by the worker).
    triggers: TriggerService | None = None

    @property
    def publication_root(self) -> Path:
        return Path(self.settings.publication.root).resolve()

    @cached_property
    def publisher(self) -> Publisher:
        """Publishes outputs (worker) and gives their S3 download links (HTTP routes)."""
        from gateway.publication.publisher import build_publisher

        return build_publisher(self.settings.publication, self.settings.server.base_url)

    def close(self) -> None:
        self.sites.close()
        self.engine.dispose()
