"""What routing reads from each site's scheduler, cached so that jobs never multiply calls.

A site's *load* (every partition's CPUs and queue: one or two scheduler calls,
:meth:`~hpc_adapters.base.SchedulerAdapter.load`) is read at most once per
``routing.queue_cache_seconds`` and serves every routing decision meanwhile;
its *associations* (who may run there, one call) once per
``routing.associations_cache_seconds``. A failed read is cached as
:class:`Down` for the same period: a dead site costs one timeout per period,
not one per request, and is refused by the hard filters meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from gateway.accounting.cache import TtlCache
from gateway.routing.config import RoutingSettings
from gateway.sites import Sites
from hpc_adapters.base import PartitionLoad, SiteLoad
from hpc_adapters.errors import HpcError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Up(Generic[T]):
    value: T


@dataclass(frozen=True)
class Down:
    """The site did not answer (``detail`` says how)."""

    detail: str


def expected_start(load: PartitionLoad | None, cores: int) -> float | None:
    """Seconds until a job of ``cores`` CPUs would start in a partition; None if unknown.

    Nothing queued and enough idle CPUs: 0. Otherwise the queued work spread
    over the partition's CPUs (pending CPU-seconds / CPUs), plus, when too few
    CPUs are idle now, the time until the first running job reaches its limit.
    An estimate from Slurm's own numbers, not a promise: good enough to rank sites.
    """
    if load is None or load.total_cpus <= 0:
        return None
    if load.pending_jobs == 0 and load.idle_cpus >= cores:
        return 0.0
    wait = load.pending_cpu_seconds / load.total_cpus
    if load.idle_cpus < cores:
        wait += load.soonest_end_seconds or 0
    return float(wait)


class SiteReadings:
    """Each site's load and associations, cached per site (thread-safe)."""

    def __init__(
        self,
        sites: Sites,
        settings: RoutingSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sites = sites
        self._loads: TtlCache[str, Up[SiteLoad] | Down] = TtlCache(
            settings.queue_cache_seconds, clock
        )
        self._assocs: TtlCache[str, Up[dict[str, frozenset[str]]] | Down] = TtlCache(
            settings.associations_cache_seconds, clock
        )

    def load(self, site: str) -> Up[SiteLoad] | Down:
        return self._loads.get(site, lambda: self._read(site, "load", self._load_of))

    def associations(self, site: str) -> Up[dict[str, frozenset[str]]] | Down:
        return self._assocs.get(site, lambda: self._read(site, "associations", self._assocs_of))

    def forget(self) -> None:
        """Read every site again at the next decision (e.g. after a probe saw a change)."""
        self._loads.forget()
        self._assocs.forget()

    def _load_of(self, site: str) -> SiteLoad:
        return self.sites.adapter(site).load()

    def _assocs_of(self, site: str) -> dict[str, frozenset[str]]:
        return self.sites.adapter(site).associations()

    @staticmethod
    def _read(site: str, what: str, read: Callable[[str], T]) -> Up[T] | Down:
        try:
            return Up(read(site))
        except (HpcError, ValueError) as exc:
            detail = exc.detail if isinstance(exc, HpcError) else str(exc)
            log.warning("site %s: cannot read its %s: %s", site, what, detail)
            return Down(detail)
