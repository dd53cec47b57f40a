"""The cost model: cores x estimated walltime x price per core-hour of the partition.

Estimated run time, first that applies:

1. ``input-size`` -- the process has a cost model in ``accounting.cost_models``
   and at least one of its inputs has a known size (inline values):
   ``base_seconds + seconds_per_input_mb * MB``;
2. ``history`` -- the median elapsed time of the last ``history_runs``
   successful runs of the process at the site, once there are at least
   ``history_min_runs`` of them (from the usage records, i.e. from Slurm);
3. ``walltime`` -- the process's walltime limit (the worst case).

The estimate is always bounded by the walltime limit (Slurm kills the job
there). Cost = core-hours x price, or, with ``billing_weights``, billing units
(Slurm ``TRESBillingWeights``) x hours x price.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.accounting import tables
from gateway.accounting.cache import TtlCache
from gateway.accounting.config import ANY, AccountingSettings
from gateway.jobs.records import Quote
from gateway.settings import SiteSettings
from hpc_adapters.base import Usage
from processes.definition import ProcessDefinition, Resources

#: Partition key of a job that names none on a site without ``default_partition``.
DEFAULT_PARTITION = "default"


def quoted_core_hours(quote: Mapping[str, Any] | None, basis: str = "estimate") -> float:
    """Core-hours recorded in a job's stored quote (0 for jobs without one)."""
    if not quote:
        return 0.0
    key = "max_core_hours" if basis == "limit" else "core_hours"
    value = quote.get(key, quote.get("core_hours"))
    return float(value) if isinstance(value, int | float) else 0.0


class Pricing:
    """Prices per site and partition, and billing units from TRES weights."""

    def __init__(self, settings: AccountingSettings, sites: Mapping[str, SiteSettings]) -> None:
        self.settings = settings
        self.sites = dict(sites)

    def partition(self, site: str, resources: Resources) -> str:
        if resources.partition:
            return resources.partition
        site_settings = self.sites.get(site)
        if site_settings is not None and site_settings.default_partition:
            return site_settings.default_partition
        return DEFAULT_PARTITION

    def price(self, site: str, partition: str | None) -> float:
        """Price per core-hour (or billing-unit hour) of ``partition`` at ``site``."""
        part = partition or DEFAULT_PARTITION
        for site_key in (site, ANY):
            table = self.settings.prices.get(site_key) or {}
            for part_key in (part, ANY):
                if part_key in table:
                    return float(table[part_key])
        return self.settings.default_price_per_core_hour

    def billing_units(self, cores: int, memory_mb: int) -> float:
        """Slurm's billing TRES for an allocation (``cores`` when no weights are set)."""
        weights = self.settings.billing_weights
        if not weights:
            return float(cores)
        parts = [
            weights.get("cpu", 0.0) * cores,
            weights.get("mem", 0.0) * memory_mb / 1024.0,
            weights.get("node", 0.0) * 1,
        ]
        return max(parts) if self.settings.billing_mode == "max" else sum(parts)

    def actual_cost(self, usage: Usage, site: str) -> float:
        """What a finished job cost: Slurm's billing TRES when weights are set, else cores."""
        price = self.price(site, usage.partition)
        if self.settings.billing_weights and usage.billing is not None:
            return round(usage.billing * usage.elapsed_seconds / 3600.0 * price, 6)
        return round(usage.cpu_seconds / 3600.0 * price, 6)


def input_bytes(inputs: Mapping[str, Any], names: list[str]) -> int | None:
    """Total size of the inputs whose size is known (inline values); None if none is."""
    total = 0
    known = False
    for name, value in inputs.items():
        if names and name not in names:
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and "href" in item:
                continue  # by reference: size unknown before staging
            data = item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))
            total += len(data.encode("utf-8"))
            known = True
    return total if known else None


class Estimator:
    """Quotes a run of a process at a site from its resources, inputs and history.

    With ``history_ttl`` > 0 the history of a (process, site) is read at most
    once per ``history_ttl`` seconds (:meth:`forget_history` drops it sooner).
    """

    def __init__(
        self,
        engine: Engine,
        settings: AccountingSettings,
        pricing: Pricing,
        *,
        history_ttl: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.pricing = pricing
        self._history: TtlCache[tuple[str, str], list[int]] = TtlCache(history_ttl, clock)

    def history(self, process_id: str, site: str) -> list[int]:
        """Elapsed seconds of the most recent successful runs (newest first)."""
        return list(
            self._history.get((process_id, site), lambda: self._read_history(process_id, site))
        )

    def forget_history(self, process_id: str | None = None) -> None:
        """Re-read the history of ``process_id`` (every process without one) next time."""
        self._history.forget(None if process_id is None else lambda key: key[0] == process_id)

    def _read_history(self, process_id: str, site: str) -> list[int]:
        u = tables.usage
        query = (
            sa.select(u.c.elapsed_seconds)
            .where(u.c.process_id == process_id, u.c.site == site, u.c.state == "COMPLETED")
            .order_by(u.c.end_time.desc())
            .limit(self.settings.history_runs)
        )
        with self.engine.connect() as conn:
            return [int(r[0]) for r in conn.execute(query).all()]

    def estimate_seconds(
        self, process: ProcessDefinition, inputs: Mapping[str, Any], site: str, limit: int
    ) -> tuple[int, dict[str, Any]]:
        """(estimated seconds, basis) for one run; never above ``limit``."""
        model = self.settings.cost_models.get(process.id)
        if model is not None:
            size = input_bytes(inputs, model.inputs)
            if size is not None:
                mb = size / 1_000_000
                raw = model.base_seconds + model.seconds_per_input_mb * mb
                seconds = min(limit, max(1, math.ceil(raw)))
                return seconds, {"method": "input-size", "input_bytes": size}
        runs = self.history(process.id, site)
        if len(runs) >= self.settings.history_min_runs:
            median = statistics.median(runs)
            seconds = min(limit, max(1, math.ceil(median)))
            return seconds, {"method": "history", "runs": len(runs), "median_elapsed": median}
        return limit, {"method": "walltime", "runs": len(runs)}

    def quote(
        self,
        process: ProcessDefinition,
        inputs: Mapping[str, Any],
        site: str,
        project: str,
        now: datetime | None = None,
    ) -> Quote:
        resources = process.resources_for(dict(inputs))
        limit = resources.walltime_minutes * 60
        seconds, basis = self.estimate_seconds(process, inputs, site, limit)
        # a tiled process runs as a job array: every task is charged (per-task estimate)
        tasks = process.array_size_for(dict(inputs)) or 1
        partition = self.pricing.partition(site, resources)
        price = self.pricing.price(site, partition)
        units = self.pricing.billing_units(resources.cores, resources.memory_mb) * tasks
        basis = {**basis, "walltime_limit_seconds": limit}
        if tasks > 1:
            basis["array_tasks"] = tasks
        if self.settings.billing_weights:
            basis["billing_weights"] = dict(self.settings.billing_weights)
        return Quote(
            process_id=process.id,
            process_version=process.version,
            site=site,
            partition=partition,
            project=project,
            cores=resources.cores,
            memory_mb=resources.memory_mb,
            walltime_limit_seconds=limit,
            estimated_seconds=seconds,
            core_hours=round(resources.cores * tasks * seconds / 3600.0, 6),
            max_core_hours=round(resources.cores * tasks * limit / 3600.0, 6),
            billing_units=units,
            price_per_core_hour=price,
            cost=round(units * seconds / 3600.0 * price, 6),
            max_cost=round(units * limit / 3600.0 * price, 6),
            currency=self.settings.currency,
            basis=basis,
            created=(now or datetime.now(UTC)).isoformat(),
        )
