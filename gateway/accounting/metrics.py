"""Prometheus metrics: what the database knows is read at scrape time, events are counted.

Two kinds, so that the numbers are right with several gunicorn workers, a
separate ``hpcgw worker`` process and several gateway instances:

* **From the database, at scrape time** (:class:`DatabaseCollector`): jobs by
  process and state, core-hours / CPU-seconds / cost / accounted jobs by user
  (trusted readers only), project, process and site, quoted core-hours, usage
  reads still pending, jobs waiting for nearline inputs (and the longest
  wait), and the queue-wait and run-time histograms (bucketed in SQL from the usage
  records). The job store is the source of truth, shared by every process and
  instance; any instance's ``/metrics`` answers the same.
* **Events in this process** (module-level prometheus-client metrics): adapter
  call latency and errors (:mod:`gateway.accounting.instrument`), staging bytes
  (:func:`record_staging_bytes`), quotes and budget refusals. With
  ``PROMETHEUS_MULTIPROC_DIR`` set (``hpcgw serve``/``worker`` set it from
  ``accounting.metrics.multiprocess_dir``, see :mod:`~gateway.accounting.metrics_env`)
  every process writes them to that directory and ``/metrics`` sums them.

Metric names are listed in ``docs/accounting.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from gateway.accounting import tables
from gateway.accounting.metrics_env import multiprocess_enabled
from gateway.jobs.tables import jobs as jobs_table
from gateway.routing.tables import site_health

log = logging.getLogger(__name__)

#: Buckets (seconds) of the queue-wait and run-time histograms.
DURATION_BUCKETS: tuple[float, ...] = (
    1, 5, 10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600,
)  # fmt: skip
ADAPTER_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

# ``*_created`` series double every counter and mean nothing across processes.
disable_created_metrics()

ADAPTER_SECONDS = Histogram(
    "hpcgw_adapter_call_seconds",
    "Latency of scheduler adapter calls (including failed ones).",
    ["site", "method"],
    buckets=ADAPTER_BUCKETS,
)
ADAPTER_ERRORS = Counter(
    "hpcgw_adapter_errors",
    "Scheduler adapter calls that raised, by error class.",
    ["site", "method", "error"],
)
STAGING_BYTES = Counter(
    "hpcgw_staging_bytes",
    "Bytes moved to job workspaces (in), out of them (out), or fetched from input sources.",
    ["site", "direction"],
)
QUOTES = Counter(
    "hpcgw_quotes",
    "Cost quotes computed (purpose: quotation request or submission).",
    ["process", "purpose"],
)
REFUSALS = Counter(
    "hpcgw_budget_refusals",
    "Submissions refused because a budget would be exceeded.",
    ["scope", "period"],
)


def record_staging_bytes(nbytes: int, *, site: str = "", direction: str = "in") -> None:
    """Count staging bytes; for the workflow manager's code.

    The adapter proxy already counts workspace transfers (``in``: written into
    a job workspace, ``out``: copied out of one). Staging code may add bytes
    fetched from input sources with ``direction="download"`` (and a cache hit's
    saved bytes with ``direction="cache"``).
    """
    if nbytes > 0:
        STAGING_BYTES.labels(site=site, direction=direction).inc(nbytes)


class _Forward:
    """Forwards the default registry (this process's event metrics, process stats)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def _labels(row: Any, names: tuple[str, ...]) -> list[str]:
    return ["" if getattr(row, n) is None else str(getattr(row, n)) for n in names]


class DatabaseCollector:
    """Job and usage metrics computed from the job store when Prometheus scrapes.

    ``per_user`` adds the ``user`` label (HPC login) to the usage metrics: what
    one person ran and spent. Only a trusted reader gets it (the scrape token,
    an administrator: see :mod:`gateway.accounting.routes`); anyone else gets
    the same totals summed over users (:meth:`aggregated`).
    """

    def __init__(self, engine: Engine, currency: str, *, per_user: bool = True) -> None:
        self.engine = engine
        self.currency = currency
        self.per_user = per_user

    def aggregated(self) -> DatabaseCollector:
        """The same metrics without the ``user`` label (summed over users)."""
        return DatabaseCollector(self.engine, self.currency, per_user=False)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "hpcgw_accounting_database_up", "1 when the job store answered this scrape."
        )
        try:
            with self.engine.connect() as conn:
                families = [
                    *self._jobs(conn),
                    *self._usage(conn),
                    *self._histograms(conn),
                    *self._sites(conn),
                    *self._waiting(conn),
                ]
        except SQLAlchemyError as exc:
            log.warning("metrics: the job store did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _jobs(self, conn: sa.Connection) -> list[Metric]:
        j = jobs_table
        jobs = GaugeMetricFamily(
            "hpcgw_jobs", "Jobs in the job store by process and state.", labels=["process", "state"]
        )
        query = sa.select(j.c.process_id, j.c.state, sa.func.count()).group_by(
            j.c.process_id, j.c.state
        )
        for process, state, count in conn.execute(query).all():
            jobs.add_metric([process, state], int(count))
        pending = GaugeMetricFamily(
            "hpcgw_usage_pending_jobs",
            "Finished jobs whose Slurm accounting record is not final yet.",
        )
        p = tables.usage_pending
        pending.add_metric(
            [], int(conn.execute(sa.select(sa.func.count()).select_from(p)).scalar_one())
        )
        return [jobs, pending]

    @staticmethod
    def _waiting(conn: sa.Connection) -> list[Metric]:
        """Jobs waiting in the gateway for a nearline input (``extra["awaiting_input"]``)."""
        count = GaugeMetricFamily(
            "hpcgw_jobs_waiting_for_input",
            "Jobs waiting in the gateway (no Slurm job) for an input on tape / nearline storage.",
        )
        longest = GaugeMetricFamily(
            "hpcgw_jobs_waiting_for_input_longest_seconds",
            "How long the longest-waiting of those jobs has waited.",
        )
        j = jobs_table
        now = datetime.now(UTC)
        waits = []
        for (extra,) in conn.execute(sa.select(j.c.extra).where(j.c.state == "staging")).all():
            since = (extra or {}).get("awaiting_input", {}).get("since")
            if since:
                waits.append((now - datetime.fromisoformat(since)).total_seconds())
        count.add_metric([], len(waits))
        longest.add_metric([], max(waits, default=0.0))
        return [count, longest]

    @staticmethod
    def _sites(conn: sa.Connection) -> list[Metric]:
        """The worker's latest health probe of each site (``gateway.routing.health``)."""
        up = GaugeMetricFamily(
            "hpcgw_site_up", "1 when the site's latest health probe succeeded.", labels=["site"]
        )
        latency = GaugeMetricFamily(
            "hpcgw_site_probe_seconds", "How long the site's latest probe took.", labels=["site"]
        )
        h = site_health
        for row in conn.execute(sa.select(h.c.site, h.c.up, h.c.latency_seconds)).all():
            up.add_metric([row.site], 1 if row.up else 0)
            if row.latency_seconds is not None:
                latency.add_metric([row.site], float(row.latency_seconds))
        return [up, latency]

    def _usage(self, conn: sa.Connection) -> list[Metric]:
        u = tables.usage
        keys: tuple[str, ...] = ("hpc_login", "project", "process_id", "site")
        names = ["user", "project", "process", "site"]
        if not self.per_user:
            keys, names = keys[1:], names[1:]
        core_hours = CounterMetricFamily(
            "hpcgw_core_hours",
            "Core-hours (Slurm CPUTimeRAW / 3600) of finished jobs.",
            labels=names,
        )
        cpu = CounterMetricFamily(
            "hpcgw_cpu_seconds",
            "CPU-seconds allocated (Slurm CPUTimeRAW) of finished jobs.",
            labels=names,
        )
        cost = CounterMetricFamily(
            "hpcgw_cost", "Cost of finished jobs.", labels=[*names, "currency"]
        )
        quoted = CounterMetricFamily(
            "hpcgw_quoted_core_hours", "Core-hours quoted for the finished jobs.", labels=names
        )
        accounted = CounterMetricFamily(
            "hpcgw_accounted_jobs", "Finished jobs with a usage record.", labels=names
        )
        query = sa.select(
            *(u.c[k] for k in keys),
            sa.func.sum(u.c.cpu_seconds).label("cpu"),
            sa.func.sum(u.c.cost).label("cost"),
            sa.func.sum(sa.func.coalesce(u.c.quoted_core_hours, 0)).label("quoted"),
            sa.func.count().label("n"),
        ).group_by(*(u.c[k] for k in keys))
        for row in conn.execute(query).all():
            labels = _labels(row, keys)
            core_hours.add_metric(labels, int(row.cpu) / 3600.0)
            cpu.add_metric(labels, int(row.cpu))
            cost.add_metric([*labels, self.currency], float(row.cost or 0))
            quoted.add_metric(labels, float(row.quoted or 0))
            accounted.add_metric(labels, int(row.n))
        return [core_hours, cpu, cost, quoted, accounted]

    def _histograms(self, conn: sa.Connection) -> list[Metric]:
        u = tables.usage
        out: list[Metric] = []
        specs = (
            (
                "hpcgw_job_queue_wait_seconds",
                "Slurm queue wait (start - submit).",
                u.c.queue_wait_seconds,
            ),
            (
                "hpcgw_job_run_seconds",
                "Slurm elapsed run time of finished jobs.",
                u.c.elapsed_seconds,
            ),
        )
        for name, doc, column in specs:
            family = HistogramMetricFamily(name, doc, labels=["process", "site"])
            buckets = [
                sa.func.sum(sa.case((column <= b, 1), else_=0)).label(f"b{i}")
                for i, b in enumerate(DURATION_BUCKETS)
            ]
            query = (
                sa.select(
                    u.c.process_id,
                    u.c.site,
                    sa.func.count().label("n"),
                    sa.func.sum(column).label("total"),
                    *buckets,
                )
                .where(column.is_not(None))
                .group_by(u.c.process_id, u.c.site)
            )
            for row in conn.execute(query).all():
                pairs = [
                    (_bound(b), int(getattr(row, f"b{i}") or 0))
                    for i, b in enumerate(DURATION_BUCKETS)
                ]
                pairs.append(("+Inf", int(row.n)))
                family.add_metric([row.process_id, row.site], pairs, float(row.total or 0))
            out.append(family)
        return out


def _bound(value: float) -> str:
    return str(float(value))


def render(collector: DatabaseCollector) -> tuple[bytes, str]:
    """The ``/metrics`` body and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_enabled():
        MultiProcessCollector(registry)
    else:
        registry.register(_Forward())
    registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST
