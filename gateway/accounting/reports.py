"""Usage reports: usage records filtered by time and subject, grouped, as table/CSV/JSON.

One query model serves ``hpcgw accounting report``, ``GET /accounting/usage``
and the dashboard. Jobs count in the window by their Slurm end time:
``[start, end)``. Grouping keys: ``user`` (HPC login), ``project`` (Slurm
account), ``process``, ``site``, ``state``, ``partition``, time buckets
``day`` / ``month`` (UTC, by end time), or ``job`` (one row per job, with its
Slurm job id). ``cpu_seconds`` is Slurm's ``CPUTimeRAW``; sums are exact.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.accounting import tables

_u = tables.usage
#: Grouping keys that are columns of the usage table.
DIMENSIONS: dict[str, sa.ColumnElement[Any]] = {
    "user": _u.c.hpc_login,
    "project": _u.c.project,
    "process": _u.c.process_id,
    "site": _u.c.site,
    "state": _u.c.state,
    "partition": _u.c.partition,
}
TIME_KEYS = ("day", "month")
GROUP_KEYS = (*DIMENSIONS, *TIME_KEYS, "job")
_JOB_COLUMNS = ("job", "slurm_job", "user", "project", "process", "site", "state", "end_time")
FORMATS = ("table", "csv", "json")


class ReportError(ValueError):
    """A report parameter is invalid (message names it)."""


def _plus(moment: datetime, delta: timedelta) -> datetime:
    """``moment + delta``, or the first/last representable instant where that overflows."""
    try:
        return moment + delta
    except OverflowError:
        edge = datetime.max if delta > timedelta(0) else datetime.min
        return edge.replace(tzinfo=UTC)


def plus_days(moment: datetime, days: int) -> datetime:
    """``moment`` shifted by ``days``, clamped to the representable range."""
    return _plus(moment, timedelta(days=days))


def parse_time(value: str, *, end: bool = False) -> datetime:
    """ISO date or datetime (UTC if no offset). A date as an *end* includes that day."""
    text = value.strip().upper()  # RFC 3339 allows a lower-case t and z
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return _plus(moment, timedelta(days=1)) if end else moment
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(f"not an ISO date or date-time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_group_by(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``user,process`` -> ("user", "process"); refuses unknown keys."""
    items: list[str] = []
    for part in [value] if isinstance(value, str) else list(value or []):
        items.extend(k.strip().lower() for k in part.split(",") if k.strip())
    for key in items:
        if key not in GROUP_KEYS:
            raise ReportError(f"cannot group by {key!r}; use any of {', '.join(GROUP_KEYS)}")
    return tuple(dict.fromkeys(items))


@dataclass(frozen=True)
class ReportQuery:
    start: datetime | None = None
    end: datetime | None = None
    group_by: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    projects: tuple[str, ...] = ()
    processes: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()


@dataclass
class ReportRow:
    keys: dict[str, str]
    jobs: int = 0
    cpu_seconds: int = 0
    elapsed_seconds: int = 0
    cost: float = 0.0
    quoted_core_hours: float = 0.0

    @property
    def core_hours(self) -> float:
        return self.cpu_seconds / 3600.0

    def add(self, other: ReportRow) -> None:
        self.jobs += other.jobs
        self.cpu_seconds += other.cpu_seconds
        self.elapsed_seconds += other.elapsed_seconds
        self.cost += other.cost
        self.quoted_core_hours += other.quoted_core_hours

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.keys,
            "jobs": self.jobs,
            "cpu_seconds": self.cpu_seconds,
            "core_hours": round(self.core_hours, 6),
            "elapsed_seconds": self.elapsed_seconds,
            "quoted_core_hours": round(self.quoted_core_hours, 6),
            "cost": round(self.cost, 6),
        }


@dataclass
class Report:
    query: ReportQuery
    columns: tuple[str, ...]
    rows: list[ReportRow] = field(default_factory=list)
    total: ReportRow = field(default_factory=lambda: ReportRow(keys={}))
    currency: str = ""

    def to_dict(self) -> dict[str, Any]:
        q = self.query
        return {
            "from": q.start.isoformat() if q.start else None,
            "to": q.end.isoformat() if q.end else None,
            "groupBy": list(q.group_by),
            "filters": {
                "user": list(q.users),
                "project": list(q.projects),
                "process": list(q.processes),
                "site": list(q.sites),
            },
            "currency": self.currency,
            "rows": [r.to_dict() for r in self.rows],
            "total": self.total.to_dict(),
        }


def _filtered(query: sa.Select[Any], q: ReportQuery) -> sa.Select[Any]:
    if q.start is not None:
        query = query.where(_u.c.end_time >= q.start)
    if q.end is not None:
        query = query.where(_u.c.end_time < q.end)
    for values, column in (
        (q.users, _u.c.hpc_login),
        (q.projects, _u.c.project),
        (q.processes, _u.c.process_id),
        (q.sites, _u.c.site),
    ):
        if values:
            query = query.where(column.in_(list(values)))
    return query


def _bucket(moment: datetime, key: str) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d") if key == "day" else moment.strftime("%Y-%m")


_SUMS = (
    sa.func.count().label("n"),
    sa.func.coalesce(sa.func.sum(_u.c.cpu_seconds), 0).label("cpu"),
    sa.func.coalesce(sa.func.sum(_u.c.elapsed_seconds), 0).label("elapsed"),
    sa.func.coalesce(sa.func.sum(_u.c.cost), 0).label("cost"),
    sa.func.coalesce(sa.func.sum(_u.c.quoted_core_hours), 0).label("quoted"),
)


def _row(keys: dict[str, str], r: Any) -> ReportRow:
    return ReportRow(
        keys=keys,
        jobs=int(r.n),
        cpu_seconds=int(r.cpu),
        elapsed_seconds=int(r.elapsed),
        cost=float(r.cost),
        quoted_core_hours=float(r.quoted),
    )


def run_report(engine: Engine, q: ReportQuery, currency: str = "") -> Report:
    """Run ``q`` against the usage table."""
    if "job" in q.group_by:
        return _job_report(engine, q, currency)
    dims = [k for k in q.group_by if k in DIMENSIONS]
    times = [k for k in q.group_by if k in TIME_KEYS]
    columns = [DIMENSIONS[k].label(k) for k in dims]
    if times:
        columns.append(_u.c.end_time.label("end_time"))
    query = _filtered(sa.select(*columns, *_SUMS), q)
    if columns:
        query = query.group_by(*columns)
    groups: dict[tuple[str, ...], ReportRow] = {}
    with engine.connect() as conn:
        for r in conn.execute(query).all():
            if int(r.n) == 0:
                continue
            keys = {k: "" if getattr(r, k) is None else str(getattr(r, k)) for k in dims}
            for key in times:
                keys[key] = _bucket(r.end_time, key)
            ordered = {k: keys[k] for k in q.group_by}
            row = _row(ordered, r)
            ident = tuple(ordered.values())
            if ident in groups:
                groups[ident].add(row)
            else:
                groups[ident] = row
    rows = [groups[k] for k in sorted(groups)]
    return _finish(q, tuple(q.group_by), rows, currency)


def _job_report(engine: Engine, q: ReportQuery, currency: str) -> Report:
    query = _filtered(sa.select(_u), q).order_by(_u.c.end_time, _u.c.job_id)
    rows: list[ReportRow] = []
    with engine.connect() as conn:
        for r in conn.execute(query).all():
            keys = {
                "job": r.job_id,
                "slurm_job": r.scheduler_job_id,
                "user": r.hpc_login,
                "project": r.project,
                "process": r.process_id,
                "site": r.site,
                "state": r.state,
                "end_time": r.end_time.astimezone(UTC).isoformat(),
            }
            rows.append(
                ReportRow(
                    keys=keys,
                    jobs=1,
                    cpu_seconds=int(r.cpu_seconds),
                    elapsed_seconds=int(r.elapsed_seconds),
                    cost=float(r.cost),
                    quoted_core_hours=float(r.quoted_core_hours or 0.0),
                )
            )
    return _finish(q, _JOB_COLUMNS, rows, currency)


def _finish(q: ReportQuery, keys: tuple[str, ...], rows: list[ReportRow], currency: str) -> Report:
    total = ReportRow(keys={})
    for row in rows:
        total.add(row)
    return Report(query=q, columns=keys, rows=rows, total=total, currency=currency)


# -- formats --------------------------------------------------------------------

_VALUES = ("jobs", "cpu_seconds", "core_hours", "elapsed_seconds", "quoted_core_hours", "cost")


def to_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2)


def to_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*report.columns, *_VALUES])
    for row in report.rows:
        data = row.to_dict()
        writer.writerow([data.get(k, "") for k in (*report.columns, *_VALUES)])
    return buffer.getvalue()


def _cells(values: Iterable[Any]) -> list[str]:
    return [f"{v:.4f}" if isinstance(v, float) else str(v) for v in values]


def to_table(report: Report) -> str:
    """An aligned plain-text table with a TOTAL line."""
    header = [*report.columns, *_VALUES]
    body = [_cells(r.to_dict().get(k, "") for k in header) for r in report.rows]
    total = report.total.to_dict()
    label = ["TOTAL", *([""] * (len(report.columns) - 1))] if report.columns else []
    body.append(label + _cells(total[k] for k in _VALUES))
    widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(header)]
    numeric = set(range(len(report.columns), len(header)))

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(widths[i]) if i in numeric else c.ljust(widths[i]) for i, c in enumerate(cells)
        ).rstrip()

    lines = [fmt(header), fmt(["-" * w for w in widths])]
    lines += [fmt(line) for line in body]
    if report.currency:
        lines.append(f"(cost in {report.currency})")
    return "\n".join(lines) + "\n"


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return to_json(report)
    if fmt == "csv":
        return to_csv(report)
    if fmt == "table":
        return to_table(report)
    raise ReportError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
