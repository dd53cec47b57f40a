"""The accounting dashboard page: server-rendered HTML with inline SVG charts.

Plots: core-hours over time (per day, or per month for long windows), by
process, by user, by site (federation), and quoted vs actual core-hours per job; plus the totals
by user and process with exact CPU-seconds. Users see their own usage,
admins everyone's (optionally one user). No JavaScript, nothing fetched from
elsewhere: the page works offline and behind strict CSPs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from markupsafe import Markup
from sqlalchemy.engine import Engine

from gateway.accounting import charts
from gateway.accounting.reports import Report, ReportQuery, run_report

#: A window longer than this many days is plotted per month.
MAX_DAILY = 92
#: At most this many jobs in the quote-vs-actual plot (the most recent).
MAX_POINTS = 500


@dataclass
class Dashboard:
    """Everything the template shows."""

    start: datetime
    end: datetime
    users: tuple[str, ...]
    currency: str
    bucket: str
    over_time: Markup
    by_process: Markup
    by_user: Markup
    by_site: Markup
    quote_vs_actual: Markup
    totals: Report
    by_user_process: Report
    jobs: int
    quote_points: int
    extra: dict[str, Any] = field(default_factory=dict)


def _buckets(start: datetime, end: datetime, bucket: str) -> list[str]:
    labels: list[str] = []
    cursor = datetime(start.year, start.month, start.day, tzinfo=UTC)
    while cursor < end and len(labels) < 2000:
        label = cursor.strftime("%Y-%m-%d" if bucket == "day" else "%Y-%m")
        if not labels or labels[-1] != label:
            labels.append(label)
        if cursor.date() == date.max:  # the last representable day
            break
        cursor += timedelta(days=1)
    return labels


def build_dashboard(
    engine: Engine,
    start: datetime,
    end: datetime,
    users: tuple[str, ...],
    currency: str,
) -> Dashboard:
    """Run the dashboard's reports over ``[start, end)`` for ``users`` (empty: everyone)."""
    base = ReportQuery(start=start, end=end, users=users)
    bucket = "day" if (end - start) <= timedelta(days=MAX_DAILY) else "month"

    def report(*keys: str) -> Report:
        return run_report(engine, _with(base, keys), currency)

    over = {r.keys[bucket]: r.core_hours for r in report(bucket).rows}
    series = [(label, over.get(label, 0.0)) for label in _buckets(start, end, bucket)]
    by_process = [(r.keys["process"], r.core_hours) for r in report("process").rows]
    by_user = [(r.keys["user"], r.core_hours) for r in report("user").rows]
    by_site = [(r.keys["site"], r.core_hours) for r in report("site").rows]
    job_rows = report("job").rows[-MAX_POINTS:]
    points = [
        (f"{r.keys['process']} {r.keys['slurm_job']}", r.quoted_core_hours, r.core_hours)
        for r in job_rows
        if r.quoted_core_hours > 0
    ]
    totals = report()
    return Dashboard(
        start=start,
        end=end,
        users=users,
        currency=currency,
        bucket=bucket,
        over_time=Markup(charts.column_chart("chart-over-time", series)),  # noqa: S704
        by_process=Markup(charts.bar_chart("chart-by-process", by_process)),  # noqa: S704
        by_user=Markup(charts.bar_chart("chart-by-user", by_user)),  # noqa: S704
        by_site=Markup(charts.bar_chart("chart-by-site", by_site)),  # noqa: S704
        quote_vs_actual=Markup(charts.scatter_chart("chart-quote-actual", points)),  # noqa: S704
        totals=totals,
        by_user_process=report("user", "process"),
        jobs=totals.total.jobs,
        quote_points=len(points),
    )


def _with(base: ReportQuery, keys: tuple[str, ...]) -> ReportQuery:
    return ReportQuery(
        start=base.start,
        end=base.end,
        group_by=keys,
        users=base.users,
        projects=base.projects,
        processes=base.processes,
        sites=base.sites,
    )
