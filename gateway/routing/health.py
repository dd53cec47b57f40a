"""Site health: a periodic probe per site, kept in the database for every process to read.

The worker's :class:`HealthProber` stage probes each configured site every
``routing.probe_seconds`` (the adapter's ``check()``: slurmrestd ``/ping`` +
``/diag``, or ``sinfo``/``scontrol ping`` over SSH) and writes one row per
site to ``site_health`` (Alembic 0004): up or not, the probe's latency, when,
and what failed. API processes read it through :class:`HealthView` (cached a
second or two): ``GET /status/sites``, the Prometheus gauges
``hpcgw_site_up`` / ``hpcgw_site_probe_seconds``, the router (a site whose
latest probe failed gets no new jobs) and the dispatcher (an accepted job at
a down site is re-routed, :mod:`gateway.routing.failover`).

A probe older than three periods is *stale*: nothing is concluded from it
(no worker probing is not the same as the site being down).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.accounting.cache import TtlCache
from gateway.routing.tables import site_health
from gateway.sites import Sites, probe_site
from hpc_adapters.errors import HpcError

log = logging.getLogger(__name__)

#: A probe is stale after this many probe periods.
STALE_PERIODS = 3


@dataclass(frozen=True)
class SiteHealth:
    """The latest probe of one site."""

    site: str
    up: bool
    checked_at: datetime
    since: datetime
    latency_seconds: float | None = None
    detail: str | None = None

    def to_dict(self, stale: bool) -> dict[str, object]:
        return {
            "site": self.site,
            "up": self.up,
            "stale": stale,
            "latencySeconds": self.latency_seconds,
            "checked": self.checked_at.isoformat(),
            "since": self.since.isoformat(),
            "detail": self.detail,
        }


class HealthStore:
    """Reads and writes ``site_health``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, health: SiteHealth) -> SiteHealth:
        """Write the latest probe; ``since`` moves only when ``up`` changed."""
        t = site_health
        with self.engine.begin() as conn:
            old = conn.execute(sa.select(t.c.up, t.c.since).where(t.c.site == health.site)).first()
            since = old.since if old is not None and old.up == health.up else health.checked_at
            values = {
                "up": health.up,
                "latency_seconds": health.latency_seconds,
                "checked_at": health.checked_at,
                "since": since,
                "detail": health.detail,
            }
            if old is None:
                conn.execute(t.insert().values(site=health.site, **values))
            else:
                conn.execute(t.update().where(t.c.site == health.site).values(**values))
        return SiteHealth(
            health.site,
            health.up,
            health.checked_at,
            since,
            health.latency_seconds,
            health.detail,
        )

    def all(self) -> dict[str, SiteHealth]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(site_health)).mappings().all()
        return {r["site"]: SiteHealth(**dict(r)) for r in rows}


class HealthView:
    """What the API and the dispatcher ask: is a site known to be down now?"""

    def __init__(
        self,
        store: HealthStore,
        probe_seconds: float,
        cache_seconds: float = 1.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.max_age = timedelta(seconds=probe_seconds * STALE_PERIODS)
        self._cache: TtlCache[str, dict[str, SiteHealth]] = TtlCache(cache_seconds)
        self._now = now

    def latest(self) -> dict[str, SiteHealth]:
        try:
            return self._cache.get("all", self.store.all)
        except sa.exc.SQLAlchemyError as exc:  # no verdict without the database
            log.warning("site health unreadable: %s", exc)
            return {}

    def stale(self, health: SiteHealth) -> bool:
        return self._now() - health.checked_at > self.max_age

    def down(self, site: str) -> SiteHealth | None:
        """The fresh probe saying ``site`` is down, or None (up, or nothing known)."""
        health = self.latest().get(site)
        if health is None or health.up or self.stale(health):
            return None
        return health


class HealthProber:
    """Worker stage: probe every site once per ``probe_seconds`` and record it."""

    def __init__(
        self,
        sites: Sites,
        store: HealthStore,
        probe_seconds: float,
        on_change: Callable[[SiteHealth], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sites = sites
        self.store = store
        self.probe_seconds = probe_seconds
        self.on_change = on_change
        self._clock = clock
        self._next = 0.0
        self._last: dict[str, bool] = {}
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """Start a round of probes in the background if a period has passed.

        In a thread of its own: a site that times out must not hold up the
        worker's cycle (dispatching to the other sites). Returns 0: probing is
        not job work, it never shortens the worker's sleep.
        """
        if self._clock() < self._next or (self._thread and self._thread.is_alive()):
            return 0
        self._next = self._clock() + self.probe_seconds
        for name in self.sites.names():  # built here, not racing the worker's threads
            with contextlib.suppress(LookupError, ValueError, HpcError):
                self.sites.adapter(name)
        self._thread = threading.Thread(target=self.probe_all, name="hpcgw-probe", daemon=True)
        self._thread.start()
        return 0

    def probe_all(self) -> None:
        for name in list(self.sites.names()):
            try:
                self.probe(name)
            except sa.exc.SQLAlchemyError as exc:  # the job store is down: next round
                log.warning("site %s: probe not recorded: %s", name, exc)

    def probe(self, name: str) -> SiteHealth:
        started = time.monotonic()
        report = probe_site(self.sites, name)
        latency = time.monotonic() - started
        health = self.store.record(
            SiteHealth(
                site=name,
                up=report.ok,
                checked_at=datetime.now(UTC),
                since=datetime.now(UTC),
                latency_seconds=round(latency, 4),
                detail=report.error,
            )
        )
        if self._last.get(name) != health.up:
            level = logging.INFO if health.up else logging.ERROR
            state = "up" if health.up else f"DOWN: {health.detail}"
            log.log(level, "site %s is %s", name, state)
            if self.on_change is not None and name in self._last:
                self.on_change(health)
            self._last[name] = health.up
        return health
