"""HTTP surface of accounting (a Flask blueprint; errors are OGC exception documents).

==========================================  ==========================================
``POST /processes/{id}/quotations``          quote a run (same body as an execution)
``GET  /accounting/usage``                   usage report (own usage; admins: all)
``GET  /accounting/dashboard``               HTML dashboard with SVG plots
``GET  /accounting/budgets``                 budgets and their standing (admin)
``PUT  /accounting/budgets``                 create/replace a budget (admin)
``DELETE /accounting/budgets/{scope}/{name}/{period}``  remove a budget (admin)
``GET  /metrics``                            Prometheus exposition
==========================================  ==========================================

Authentication is the app's ``before_request`` hook; ``/metrics`` is public
when ``accounting.metrics.public`` (optionally guarded by a static bearer token).
Its per-user labels (``user``) are served only with the scrape token or to an
administrator; anyone else reads the same metrics summed over users.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, render_template, request

from gateway.accounting.budgets import ALL_SITES, Scope
from gateway.accounting.dashboard import build_dashboard
from gateway.accounting.metrics import render as render_metrics
from gateway.accounting.periods import parse_period
from gateway.accounting.reports import (
    ReportError,
    ReportQuery,
    parse_group_by,
    parse_time,
    plus_days,
    render,
    run_report,
)
from gateway.accounting.service import Accounting
from gateway.errors import BadRequest, Forbidden, NotFound, Unauthorized
from gateway.http.responses import json_response, read_json_body
from gateway.http.security import current_principal, request_principal
from gateway.identity.auth import Principal
from gateway.services import Services
from gateway.settings import Settings

blueprint = Blueprint("hpcgw_accounting", __name__, template_folder="templates")

_DEFAULT_DAYS = 30


def _services() -> Services:
    return current_app.extensions["hpcgw"]


def _accounting() -> Accounting:
    accounting = _services().accounting
    if accounting is None or not accounting.settings.enabled:
        raise NotFound("accounting is not enabled on this server")
    return accounting


def _admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("this endpoint is for HPC-centre administrators (role hpc-admin)")


def _list_arg(name: str) -> tuple[str, ...]:
    values: list[str] = []
    for raw in request.args.getlist(name):
        values.extend(v.strip() for v in raw.split(",") if v.strip())
    return tuple(dict.fromkeys(values))


# -- quotations -----------------------------------------------------------------


@blueprint.post("/processes/<process_id>/quotations")
def quotation(process_id: str) -> Response:
    """The estimated core-hours and cost of an execution, without running anything."""
    principal = current_principal()
    _services().jobs.process(process_id)  # 404 before reading the body
    return json_response(quotation_document(principal, process_id, read_json_body()))


def quotation_document(principal: Principal, process_id: str, body: Any) -> dict[str, Any]:
    """The quotation of ``body`` (an execute request) for ``principal``: core-hours, cost,
    the site routing would pick with every site's offer, and the budgets it would use."""
    services = _services()
    accounting = _accounting()
    process = services.jobs.process(process_id)
    execute = services.jobs.parse_request(process, body)
    router = services.jobs.router
    if router is None:
        quote = accounting.quote(principal, process, execute)
        routing: dict[str, Any] = {}
    else:  # every site's price and expected start, and the one routing would pick
        routed = router.route(principal, process, execute, purpose="quotation")
        quote = routed.quote or accounting.quote(principal, process, execute, site=routed.site)
        reason = routed.decision.reason
        routing = {"hpcSite": routed.site, "routingReason": reason, "sites": routed.offers()}
    base = services.settings.server.base_url.rstrip("/")
    document: dict[str, Any] = {
        **quote.to_dict(),
        **routing,
        "budgets": [s.to_dict() for s in accounting.budget_statuses(principal, quote)],
        "links": [
            {
                "href": f"{base}/processes/{process.id}/execution",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/execute",
                "type": "application/json",
                "title": "Execute the process",
            }
        ],
    }
    return document


# -- usage ----------------------------------------------------------------------


def _report_query(principal: Principal, default_days: int | None = None) -> ReportQuery:
    try:
        start_raw, end_raw = request.args.get("from"), request.args.get("to")
        end = parse_time(end_raw, end=True) if end_raw else None
        start = parse_time(start_raw) if start_raw else None
        if default_days is not None:
            end = end or _tomorrow()
            start = start or plus_days(end, -default_days)
        group_by = parse_group_by(request.args.getlist("groupBy") or None)
    except ReportError as exc:
        raise BadRequest(str(exc)) from None
    if start is not None and end is not None and start >= end:
        raise BadRequest("'from' must be before 'to'")
    users = _list_arg("user")
    if not principal.is_admin:
        own = principal.hpc_login
        if not own:
            raise Forbidden(f"user '{principal.username}' has no HPC account, hence no usage")
        if users and users != (own,):
            raise Forbidden("you may only see your own usage")
        users = (own,)
    return ReportQuery(
        start=start,
        end=end,
        group_by=group_by,
        users=users,
        projects=_list_arg("project"),
        processes=_list_arg("process"),
        sites=_list_arg("site"),
    )


def _tomorrow() -> datetime:
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)


@blueprint.get("/accounting/usage")
def usage() -> Response:
    """Usage records grouped and filtered like ``hpcgw accounting report``."""
    principal = current_principal()
    accounting = _accounting()
    query = _report_query(principal)
    report = run_report(accounting.engine, query, accounting.settings.currency)
    fmt = (request.args.get("f") or "json").lower()
    if fmt == "csv":
        return Response(render(report, "csv"), content_type="text/csv; charset=utf-8")
    if fmt != "json":
        raise BadRequest(f"unsupported format f={fmt!r}; use f=json or f=csv")
    return json_response(report.to_dict())


@blueprint.get("/accounting/dashboard")
def dashboard() -> Response:
    principal = current_principal()
    accounting = _accounting()
    query = _report_query(principal, default_days=_DEFAULT_DAYS)
    assert query.start is not None and query.end is not None
    data = build_dashboard(
        accounting.engine, query.start, query.end, query.users, accounting.settings.currency
    )
    if principal.is_admin:
        scope_text = f"user {', '.join(query.users)}" if query.users else "all users"
    else:
        scope_text = f"your usage ({principal.hpc_login})"
    html = render_template(
        "accounting/dashboard.html",
        d=data,
        title=_services().settings.server.title,
        scope_text=scope_text,
        is_admin=principal.is_admin,
        from_value=query.start.strftime("%Y-%m-%d"),
        to_value=(query.end - timedelta(seconds=1)).strftime("%Y-%m-%d"),
        user_value=",".join(query.users) if principal.is_admin else "",
    )
    return Response(html, content_type="text/html; charset=utf-8")


# -- budgets (admin) ------------------------------------------------------------


@blueprint.get("/accounting/budgets")
def list_budgets() -> Response:
    principal = current_principal()
    _admin(principal)
    accounting = _accounting()
    scope = _scope(request.args["scope"]) if request.args.get("scope") else None
    site = _budget_site(accounting, request.args["site"]) if request.args.get("site") else None
    out = []
    for budget in accounting.budgets.find(scope, request.args.get("name") or None, site):
        entry = budget.to_dict()
        entry.update(note=budget.note, updated=budget.updated.isoformat())
        if budget.name != "*":
            standing = accounting.checker.standing(budget, accounting.settings.default_project)
            entry["status"] = standing.to_dict()
        out.append(entry)
    return json_response({"budgets": out})


def _scope(value: Any) -> Scope:
    try:
        return Scope(str(value).lower())
    except ValueError:
        raise BadRequest("scope must be 'user' or 'project'") from None


def _budget_site(accounting: Accounting, value: object) -> str:
    try:
        return accounting.budget_site(value)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


@blueprint.put("/accounting/budgets")
def set_budget() -> Response:
    principal = current_principal()
    _admin(principal)
    accounting = _accounting()
    body = read_json_body()
    if not isinstance(body, dict):
        raise BadRequest("send a JSON object {scope, name, period, limit_core_hours[, site]}")
    limit = body.get("limit_core_hours")
    if isinstance(limit, bool) or not isinstance(limit, int | float) or limit < 0:
        raise BadRequest("limit_core_hours must be a number >= 0")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("name must be a user (HPC login), a project (Slurm account) or '*'")
    note = body.get("note")
    site = _budget_site(accounting, body.get("site"))
    try:
        period = parse_period(str(body.get("period", "month")))
        budget = accounting.budgets.set(
            _scope(body.get("scope")),
            name.strip(),
            period,
            float(limit),
            actor=f"admin:{principal.username}",
            note=note if isinstance(note, str) else None,
            site=site,
        )
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return json_response(budget.to_dict())


@blueprint.delete("/accounting/budgets/<scope>/<name>/<period>")
def delete_budget(scope: str, name: str, period: str) -> Response:
    """Remove a budget; ``?site=`` names a per-site one (default: the all-sites one)."""
    principal = current_principal()
    _admin(principal)
    accounting = _accounting()
    site = _budget_site(accounting, request.args.get("site"))
    try:
        found = accounting.budgets.delete(_scope(scope), name, parse_period(period), site)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if not found:
        where = "" if site == ALL_SITES else f" at site '{site}'"
        raise NotFound(f"no {period} budget for {scope} '{name}'{where}")
    return Response(status=204)


# -- metrics --------------------------------------------------------------------


@blueprint.get("/metrics")
def metrics() -> Response:
    accounting = _accounting()
    settings = accounting.settings.metrics
    if not settings.enabled:
        raise NotFound("metrics are disabled on this server")
    trusted = False
    if settings.bearer_token_file:
        expected = Path(settings.bearer_token_file).read_text(encoding="utf-8").strip()
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
            raise Unauthorized(
                "metrics need the scrape bearer token",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        trusted = True
    principal = request_principal()  # set when /metrics is not public
    trusted = trusted or (principal is not None and principal.is_admin)
    # per-user usage (the ``user`` label) only for the scraper's token or an admin:
    # /accounting/usage refuses one user another's usage, so must /metrics
    collector = accounting.collector if trusted else accounting.collector.aggregated()
    body, content_type = render_metrics(collector)
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})


# -- wiring ---------------------------------------------------------------------


def public_paths(settings: Settings) -> list[str]:
    """Paths accounting serves without an OIDC token (``/metrics`` when public)."""
    metrics = settings.accounting.metrics
    return ["/metrics"] if metrics.enabled and metrics.public else []


def register_accounting(app: Flask) -> None:
    """Mount the accounting routes (called by :func:`gateway.app.create_app`)."""
    app.register_blueprint(blueprint)
