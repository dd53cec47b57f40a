"""``hpcgw accounting ...``: budgets, usage reports and pending usage reads (admin CLI)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import Engine

accounting_app = typer.Typer(
    help="Accounting: budgets, usage reports, usage reads.", no_args_is_help=True
)
budget_app = typer.Typer(help="Core-hour budgets per user or project.", no_args_is_help=True)
accounting_app.add_typer(budget_app, name="budget")

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML configuration file (else $HPCGW_CONFIG)."),
]
UserOpt = Annotated[str | None, typer.Option("--user", help="HPC login (or '*': every user).")]
ProjectOpt = Annotated[
    str | None, typer.Option("--project", help="Slurm account (or '*': every project).")
]
SiteOpt = Annotated[
    str,
    typer.Option("--site", help="The site whose usage the budget counts ('*': every site)."),
]


def _site_of(config: Path | None, site: str) -> str:
    """``site`` checked against the configured sites (exit 2 naming them if unknown)."""
    from gateway.accounting.budgets import ALL_SITES
    from gateway.settings import load_settings

    if site == ALL_SITES:
        return site
    known = sorted(load_settings(config).sites)
    if site not in known:
        typer.echo(f"unknown site {site!r}: one of {', '.join(known)} or '*'", err=True)
        raise typer.Exit(2)
    return site


def _engine(config: Path | None) -> tuple[Engine, str, str]:
    """(engine, currency, default project) from the configuration."""
    from gateway.app import build_engine
    from gateway.settings import ConfigError, load_settings

    try:
        settings = load_settings(config)
    except (ConfigError, ValueError) as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    engine = build_engine(settings)
    acc = settings.accounting
    return engine, acc.currency, acc.default_project


def _subject(user: str | None, project: str | None) -> tuple[str, str]:
    from gateway.accounting.budgets import Scope

    if (user is None) == (project is None):
        typer.echo("give exactly one of --user or --project", err=True)
        raise typer.Exit(2)
    return (Scope.USER.value, user) if user is not None else (Scope.PROJECT.value, project or "")


@budget_app.command("set")
def budget_set(
    limit: Annotated[float, typer.Option("--limit", min=0, help="Core-hours per period.")],
    user: UserOpt = None,
    project: ProjectOpt = None,
    period: Annotated[str, typer.Option(help="day|week|month|quarter|year|total")] = "month",
    note: Annotated[str | None, typer.Option(help="Free text kept with the budget.")] = None,
    site: SiteOpt = "*",
    config: ConfigOpt = None,
) -> None:
    """Create or replace the budget of a user or project for a period (at one site, or all)."""
    from gateway.accounting.budgets import BudgetStore, Scope
    from gateway.accounting.periods import parse_period

    scope, name = _subject(user, project)
    engine, _, _ = _engine(config)
    site = _site_of(config, site)
    try:
        budget = BudgetStore(engine).set(
            Scope(scope), name, parse_period(period), limit, actor="cli", note=note, site=site
        )
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    where = "" if budget.site == "*" else f" at site {budget.site}"
    typer.echo(
        f"{budget.scope.value} {budget.name}: {budget.limit_core_hours:g} core-hours "
        f"per {budget.period.value}{where}"
    )


@budget_app.command("delete")
def budget_delete(
    user: UserOpt = None,
    project: ProjectOpt = None,
    period: Annotated[str, typer.Option(help="day|week|month|quarter|year|total")] = "month",
    site: SiteOpt = "*",
    config: ConfigOpt = None,
) -> None:
    """Remove a budget (exit 1 if there was none)."""
    from gateway.accounting.budgets import BudgetStore, Scope
    from gateway.accounting.periods import parse_period

    scope, name = _subject(user, project)
    engine, _, _ = _engine(config)
    try:
        found = BudgetStore(engine).delete(Scope(scope), name, parse_period(period), site)
    finally:
        engine.dispose()
    typer.echo("deleted" if found else "no such budget")
    raise typer.Exit(0 if found else 1)


@budget_app.command("show")
def budget_show(
    user: UserOpt = None,
    project: ProjectOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """List budgets with what is used and reserved in the current period."""
    from gateway.accounting.budgets import BudgetChecker, BudgetStore, Scope

    engine, _, default_project = _engine(config)
    store = BudgetStore(engine)
    checker = BudgetChecker(engine, store)
    scope = Scope.USER if user is not None else Scope.PROJECT if project is not None else None
    rows = []
    try:
        for budget in store.find(scope, user if user is not None else project):
            entry = budget.to_dict()
            if budget.name != "*":
                entry.update(checker.standing(budget, default_project).to_dict())
            rows.append(entry)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no budgets")
        return
    typer.echo(f"{'scope':8} {'name':16} {'site':12} {'period':8} {'window':10} {'limit':>10} "
               f"{'used':>10} {'reserved':>10} {'remaining':>10}")  # fmt: skip
    for r in rows:
        typer.echo(
            f"{r['scope']:8} {r['name']:16} {r['site']:12} {r['period']:8} "
            f"{r.get('window', '-'):10} "
            f"{r['limit_core_hours']:>10.4f} {r.get('used_core_hours', 0):>10.4f} "
            f"{r.get('reserved_core_hours', 0):>10.4f} "
            f"{r.get('remaining_core_hours', r['limit_core_hours']):>10.4f}"
        )


@accounting_app.command("report")
def report(
    from_: Annotated[str | None, typer.Option("--from", help="Start (ISO date/time, UTC).")] = None,
    to: Annotated[str | None, typer.Option("--to", help="End; a date includes that day.")] = None,
    group_by: Annotated[
        str, typer.Option("--group-by", help="user,project,process,site,state,day,month,job")
    ] = "user",
    fmt: Annotated[str, typer.Option("--format", help="table|csv|json")] = "table",
    user: Annotated[list[str] | None, typer.Option(help="Only these HPC logins.")] = None,
    project: Annotated[list[str] | None, typer.Option(help="Only these accounts.")] = None,
    process: Annotated[list[str] | None, typer.Option(help="Only these processes.")] = None,
    site: Annotated[list[str] | None, typer.Option(help="Only these sites.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Core-hours, CPU-seconds and cost of finished jobs, grouped (by Slurm end time)."""
    from gateway.accounting.reports import (
        ReportError,
        ReportQuery,
        parse_group_by,
        parse_time,
        render,
        run_report,
    )

    try:
        query = ReportQuery(
            start=parse_time(from_) if from_ else None,
            end=parse_time(to, end=True) if to else None,
            group_by=parse_group_by(group_by),
            users=tuple(user or ()),
            projects=tuple(project or ()),
            processes=tuple(process or ()),
            sites=tuple(site or ()),
        )
        if fmt not in ("table", "csv", "json"):
            raise ReportError(f"unknown format {fmt!r}; use table, csv or json")
    except ReportError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    engine, currency, _ = _engine(config)
    try:
        typer.echo(render(run_report(engine, query, currency), fmt), nl=False)
    finally:
        engine.dispose()


@accounting_app.command("settle")
def settle(config: ConfigOpt = None) -> None:
    """Read Slurm accounting now for every job whose usage is still pending."""
    from gateway.app import build_services
    from gateway.settings import load_settings

    services = build_services(load_settings(config))
    try:
        if services.accounting is None:
            typer.echo("accounting is disabled")
            raise typer.Exit(1)
        seen = services.accounting.recorder("cli-settle").settle_now()
        typer.echo(f"{seen} pending usage read(s) tried")
    finally:
        services.close()
