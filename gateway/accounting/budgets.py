"""Budgets in core-hours per user or project and period, checked when a job is submitted.

A submission is refused (:class:`~gateway.errors.QuotaExceeded`, HTTP 403, no
job row created, nothing sent to Slurm) when, for any budget that applies to
the user (by HPC login) or to the project (Slurm account)::

    used in the period  +  reserved by unfinished jobs  +  this quote  >  limit

*used* sums the usage records (Slurm's own ``CPUTimeRAW``) whose job ended in
the period; *reserved* sums the quotes of the owner's/project's jobs that are
still active, or finished but whose accounting record has not been read yet.
A budget named ``*`` applies to every user (or project) without a budget of
its own for the same period (and site).

A budget belongs to one site (``site``: a site name, counting only the usage
and jobs of that site) or to all of them (``site = "*"``, the default). A
submission routed to site S is checked against the all-sites budgets and the
budgets of S, so a centre can cap what a project spends at one expensive site
while its overall allocation still holds; routing (:mod:`gateway.routing`)
skips a site whose budget a run would exceed and takes another.

Two submissions racing on the last core-hours may both pass; the overshoot
is bounded by one quote per concurrent request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway import db
from gateway.accounting import tables
from gateway.accounting.periods import Period, Window, window
from gateway.accounting.quotes import quoted_core_hours
from gateway.errors import QuotaExceeded
from gateway.jobs.states import ACTIVE_STATES, FINAL_STATES
from gateway.jobs.tables import jobs as jobs_table

ANY_NAME = "*"
#: The ``site`` of a budget that counts usage at every site.
ALL_SITES = "*"
_ADJECTIVE = {
    Period.DAY: "daily",
    Period.WEEK: "weekly",
    Period.MONTH: "monthly",
    Period.QUARTER: "quarterly",
    Period.YEAR: "yearly",
    Period.TOTAL: "total",
}


class Scope(StrEnum):
    USER = "user"
    PROJECT = "project"


@dataclass(frozen=True)
class Budget:
    scope: Scope
    name: str
    period: Period
    limit_core_hours: float
    updated: datetime
    updated_by: str
    note: str | None = None
    #: The site whose usage counts, or :data:`ALL_SITES`.
    site: str = ALL_SITES

    def to_dict(self) -> dict[str, Any]:
        """What listings (REST and CLI) show of the budget itself."""
        return {
            "scope": self.scope.value,
            "name": self.name,
            "site": self.site,
            "period": self.period.value,
            "limit_core_hours": self.limit_core_hours,
            "updated_by": self.updated_by,
        }

    def describe(self, subject: str) -> str:
        who = f"{self.scope.value} '{subject}'"
        if self.name == ANY_NAME:
            who += " (default budget)"
        where = "" if self.site == ALL_SITES else f" at site '{self.site}'"
        return f"{_ADJECTIVE[self.period]} budget of {who}{where}"


@dataclass(frozen=True)
class BudgetStatus:
    """Where one budget stands for one subject, with a new quote added."""

    budget: Budget
    subject: str
    window: Window
    used: float
    reserved: float
    quote: float

    @property
    def remaining(self) -> float:
        return self.budget.limit_core_hours - self.used - self.reserved

    @property
    def exceeded(self) -> bool:
        return self.used + self.reserved + self.quote > self.budget.limit_core_hours + 1e-9

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": self.budget.scope.value,
            "name": self.subject,
            "budget": self.budget.name,
            "site": self.budget.site,
            "period": self.budget.period.value,
            "window": self.window.label,
            "window_start": self.window.start.isoformat(),
            "window_end": self.window.end.isoformat() if self.window.end else None,
            "limit_core_hours": self.budget.limit_core_hours,
            "used_core_hours": round(self.used, 6),
            "reserved_core_hours": round(self.reserved, 6),
            "quote_core_hours": round(self.quote, 6),
            "remaining_core_hours": round(self.remaining, 6),
            "exceeded": self.exceeded,
        }

    def refusal(self) -> str:
        return (
            f"the {self.budget.describe(self.subject)} for {self.window.label} would be exceeded: "
            f"used {self.used:.4f} core-hours + {self.reserved:.4f} reserved by unfinished jobs "
            f"+ {self.quote:.4f} quoted for this job = "
            f"{self.used + self.reserved + self.quote:.4f} > limit "
            f"{self.budget.limit_core_hours:.4f} core-hours"
        )


def _budget(row: Any) -> Budget:
    return Budget(
        scope=Scope(row.scope),
        name=row.name,
        period=Period(row.period),
        limit_core_hours=float(row.limit_core_hours),
        updated=row.updated,
        updated_by=row.updated_by,
        note=row.note,
        site=row.site,
    )


class BudgetStore:
    """Reads and writes ``accounting_budgets``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def set(
        self,
        scope: Scope,
        name: str,
        period: Period,
        limit_core_hours: float,
        actor: str,
        note: str | None = None,
        site: str = ALL_SITES,
    ) -> Budget:
        """Create or replace the budget of (scope, name, period, site)."""
        if limit_core_hours < 0:
            raise ValueError("a budget limit must not be negative")
        if not name or len(name) > 255:
            raise ValueError("a budget needs a user/project name (or '*')")
        if not site or len(site) > 64:
            raise ValueError("a budget's site is a site name or '*' (every site)")
        b = tables.budgets
        now = datetime.now(UTC)
        key = (
            b.c.scope == scope.value,
            b.c.name == name,
            b.c.period == period.value,
            b.c.site == site,
        )
        values = {"limit_core_hours": float(limit_core_hours), "updated": now, "updated_by": actor}
        if note is not None:
            values["note"] = note
        with self.engine.begin() as conn:
            if conn.execute(b.update().where(*key).values(**values)).rowcount == 0:
                conn.execute(
                    b.insert().values(
                        scope=scope.value,
                        name=name,
                        period=period.value,
                        site=site,
                        created=now,
                        **values,
                    )
                )
        found = self.find(scope, name, site)
        return next(x for x in found if x.period is period)

    def delete(self, scope: Scope, name: str, period: Period, site: str = ALL_SITES) -> bool:
        b = tables.budgets
        stmt = b.delete().where(
            b.c.scope == scope.value,
            b.c.name == name,
            b.c.period == period.value,
            b.c.site == site,
        )
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount > 0

    def find(
        self, scope: Scope | None = None, name: str | None = None, site: str | None = None
    ) -> list[Budget]:
        b = tables.budgets
        query = sa.select(b).order_by(b.c.scope, b.c.name, b.c.site, b.c.period)
        if scope is not None:
            query = query.where(b.c.scope == scope.value)
        if name is not None:
            query = query.where(b.c.name == name)
        if site is not None:
            query = query.where(b.c.site == site)
        with self.engine.connect() as conn:
            return [_budget(r) for r in conn.execute(query).all()]

    def applicable(self, scope: Scope, name: str, site: str | None = None) -> list[Budget]:
        """The subject's own budgets, plus ``*`` budgets for (period, site) it has none
        for; with ``site``, only the all-sites budgets and those of that site."""
        return self.applicable_to([(scope, name)], site)[(scope, name)]

    def applicable_to(
        self, subjects: Sequence[tuple[Scope, str]], site: str | None = None
    ) -> dict[tuple[Scope, str], list[Budget]]:
        """:meth:`applicable` of several subjects with one query (the submission path)."""
        b = tables.budgets
        wanted = list(dict.fromkeys(subjects))
        if not wanted:
            return {}
        query = sa.select(b).where(
            sa.or_(
                *(
                    sa.and_(b.c.scope == scope.value, b.c.name.in_([name, ANY_NAME]))
                    for scope, name in wanted
                )
            )
        )
        if site is not None:
            query = query.where(b.c.site.in_([site, ALL_SITES]))
        with db.single_statement(self.engine) as conn:
            found = [_budget(r) for r in conn.execute(query).all()]
        out: dict[tuple[Scope, str], list[Budget]] = {}
        for scope, name in wanted:
            mine = [x for x in found if x.scope is scope and x.name in (name, ANY_NAME)]
            own = {(x.period, x.site) for x in mine if x.name == name}
            out[(scope, name)] = [
                x for x in mine if x.name == name or (x.period, x.site) not in own
            ]
        return out


class BudgetChecker:
    """Computes budget standings and refuses submissions that would exceed one."""

    def __init__(self, engine: Engine, store: BudgetStore, basis: str = "estimate") -> None:
        self.engine = engine
        self.store = store
        self.basis = basis

    def used(self, scope: Scope, name: str, win: Window, site: str = ALL_SITES) -> float:
        """Core-hours recorded for jobs of ``name`` that ended in ``win`` (exact seconds),
        at ``site`` only unless it is :data:`ALL_SITES`."""
        u = tables.usage
        column = u.c.hpc_login if scope is Scope.USER else u.c.project
        query = sa.select(sa.func.coalesce(sa.func.sum(u.c.cpu_seconds), 0)).where(
            column == name, u.c.end_time >= win.start
        )
        if win.end is not None:
            query = query.where(u.c.end_time < win.end)
        if site != ALL_SITES:
            query = query.where(u.c.site == site)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one()) / 3600.0

    def reserved(
        self,
        scope: Scope,
        name: str,
        win: Window,
        default_project: str,
        site: str = ALL_SITES,
    ) -> float:
        """Quoted core-hours of unfinished jobs, and of finished ones not yet recorded
        (of jobs at ``site`` only, unless it is :data:`ALL_SITES`)."""
        j, u = jobs_table, tables.usage
        unrecorded = sa.and_(
            j.c.state.in_([s.value for s in FINAL_STATES]),
            j.c.scheduler_job_id.is_not(None),
            j.c.finished >= win.start,
            ~sa.exists().where(u.c.job_id == j.c.id),
        )
        query = sa.select(j.c.quote).where(
            sa.or_(j.c.state.in_([s.value for s in ACTIVE_STATES]), unrecorded)
        )
        if scope is Scope.USER:
            query = query.where(j.c.hpc_login == name)
        if site != ALL_SITES:
            query = query.where(j.c.site == site)
        total = 0.0
        with self.engine.connect() as conn:
            for (quote,) in conn.execute(query).all():
                if scope is Scope.PROJECT:
                    project = (quote or {}).get("project") or default_project
                    if project != name:
                        continue
                total += quoted_core_hours(quote, self.basis)
        return total

    def standing(
        self, budget: Budget, default_project: str, now: datetime | None = None
    ) -> BudgetStatus:
        """Where one named budget stands now (no quote added): what listings show."""
        win = window(budget.period, now or datetime.now(UTC))
        return BudgetStatus(
            budget=budget,
            subject=budget.name,
            window=win,
            used=self.used(budget.scope, budget.name, win, budget.site),
            reserved=self.reserved(budget.scope, budget.name, win, default_project, budget.site),
            quote=0.0,
        )

    def statuses(
        self,
        subjects: Iterable[tuple[Scope, str]],
        quote_core_hours: float,
        default_project: str,
        now: datetime | None = None,
        site: str | None = None,
    ) -> list[BudgetStatus]:
        """Every applicable budget of each (scope, name), with ``quote_core_hours`` added;
        with ``site`` (a run placed there) only the all-sites budgets and that site's."""
        at = now or datetime.now(UTC)
        out: list[BudgetStatus] = []
        wanted = list(subjects)
        budgets = self.store.applicable_to(wanted, site)
        for scope, name in wanted:
            for budget in budgets[(scope, name)]:
                win = window(budget.period, at)
                out.append(
                    BudgetStatus(
                        budget=budget,
                        subject=name,
                        window=win,
                        used=self.used(scope, name, win, budget.site),
                        reserved=self.reserved(scope, name, win, default_project, budget.site),
                        quote=quote_core_hours,
                    )
                )
        return out

    def check(
        self,
        subjects: Iterable[tuple[Scope, str]],
        quote_core_hours: float,
        default_project: str,
        now: datetime | None = None,
        site: str | None = None,
    ) -> list[BudgetStatus]:
        """The standings; raises QuotaExceeded naming the first budget that would be exceeded."""
        found = self.statuses(subjects, quote_core_hours, default_project, now, site)
        for status in found:
            if status.exceeded:
                raise QuotaExceeded(status.refusal())
        return found
