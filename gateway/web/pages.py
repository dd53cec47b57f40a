"""The pages: processes with their execution forms, the job list and a job's page.

=================================  ===============================================
``GET /ui/``                       the processes (start here)
``GET|POST /ui/processes/{id}``    the execution form; POST: quote or submit
``GET /ui/jobs``                   the caller's jobs: status, process, dates, paging
``GET /ui/jobs/{id}``              one job: status (updates itself), results, map
``POST /ui/jobs/{id}/dismiss``     cancel a running job / remove a finished one
=================================  ===============================================

Everything goes through the job service as the signed-in person
(``current_principal``): another user's job is "not found" here as in the API.
Every POST carries the session's CSRF token (checked by the authentication hook).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, redirect, render_template, request
from werkzeug.wrappers import Response

from gateway.errors import GatewayError, NoSuchJob
from gateway.http.security import current_principal
from gateway.jobs.records import Job, SummaryPage
from gateway.jobs.states import JobState
from gateway.ogcapi.job_filters import job_query
from gateway.paging import parse_limit
from gateway.publication.publisher import PublicationError
from gateway.publication.stac_items import has_item, job_item, recorded_core_hours
from gateway.web.context import error_page, web
from gateway.web.forms import FormError, execute_body, field_of_error, form_fields

blueprint = Blueprint("web_pages", __name__, template_folder="templates")
blueprint.register_error_handler(Exception, error_page)

#: Jobs per page of the list.
PAGE_SIZE = 20
#: The OGC statuses a person can filter by.
STATUSES = ("accepted", "running", "successful", "failed", "dismissed")


@blueprint.get("/ui/")
def home() -> str:
    services = web().services
    processes = list(services.registry)
    return render_template("web/home.html", processes=processes)


# -- the execution form -----------------------------------------------------------


@blueprint.route("/ui/processes/<process_id>", methods=["GET", "POST"])
def process_form(process_id: str) -> tuple[str, int]:
    services = web().services
    principal = current_principal()
    process = services.jobs.process(process_id)
    fields = form_fields(process)
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    general: list[str] = []
    quote: dict[str, Any] | None = None
    status = 200
    if request.method == "GET":
        values = _draft(request.path)
    else:
        values = {k: v for k, v in request.form.items()}
        try:
            body = execute_body(fields, values)
            if request.form.get("action") == "quote":
                quote = _quote(principal, process.id, body)
            else:
                job = services.jobs.submit(principal, process.id, body, interface="web")
                return redirect(f"{request.script_root}/ui/jobs/{job.id}", code=303)  # type: ignore[return-value]
        except FormError as exc:
            errors[exc.name] = str(exc)
        except GatewayError as exc:
            if exc.status >= 500:
                raise
            name = field_of_error(str(exc), fields)
            if name is None:
                general.append(str(exc))
            else:
                errors[name] = str(exc)
        status = 400 if errors or general else 200
    return render_template(
        "web/process.html",
        process=process,
        fields=fields,
        values=values,
        errors=errors,
        general=general,
        quote=quote,
        sites=sorted(services.settings.sites),
    ), status


def _draft(path: str) -> dict[str, str]:
    """A form kept across a sign-in (the session had expired on submit), used once."""
    browser = web().browser
    session = browser.current()
    if session is None:
        return {}
    drafts = session.data.get("drafts") or {}
    draft = drafts.pop(path, None)
    if draft is None:
        return {}
    browser.store.save(session)
    return {str(k): str(v) for k, v in draft.items()}


def _quote(principal: Any, process_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """The quotation of the form (None when accounting is off)."""
    if web().services.accounting is None:
        return None
    from gateway.accounting.routes import quotation_document

    return quotation_document(principal, process_id, body)


# -- jobs ---------------------------------------------------------------------------


@blueprint.get("/ui/jobs")
def job_list() -> str:
    services = web().services
    principal = current_principal()
    args = request.args
    limit = parse_limit(args.get("limit"), default=PAGE_SIZE)
    query = job_query(args, limit)
    page = (
        SummaryPage(jobs=[], next_cursor=None)
        if query is None
        else services.jobs.list_summaries(principal, query)
    )
    kept = [(k, v) for k, v in args.items(multi=True) if k != "next" and v]
    next_href = None
    if page.next_cursor:
        next_href = "?" + urlencode([*kept, ("next", page.next_cursor)])
    return render_template(
        "web/jobs.html",
        page=page,
        next_href=next_href,
        first_href="?" + urlencode(kept) if args.get("next") else None,
        statuses=STATUSES,
        process_ids=[p.id for p in services.registry],
        chosen_status=args.getlist("status"),
        chosen_process=args.get("processID", ""),
        datetime_filter=args.get("datetime", ""),
    )


@blueprint.get("/ui/jobs/<job_id>")
def job_page(job_id: str) -> str:
    state = web()
    services = state.services
    job = services.jobs.get(current_principal(), job_id)
    base = services.settings.server.base_url.rstrip("/")
    item = _stac_item(job, base)
    assets = list((item or {}).get("assets", {}).items())
    quicklook = next((a for _, a in assets if a.get("type") == "image/png"), None)
    return render_template(
        "web/job.html",
        job=job,
        ogc_status=job.state.ogc,
        item=item,
        assets=assets,
        quicklook=quicklook,
        core_hours=recorded_core_hours(services.engine, job.id) if job.final else None,
        tiles=services.settings.web.map_tiles_url or "",
        attribution=services.settings.web.map_attribution,
    )


def _stac_item(job: Job, base: str) -> dict[str, Any] | None:
    """The job's STAC Item (outputs with links, footprint), or None before it has one."""
    if job.state is not JobState.SUCCESSFUL or not has_item(job):
        return None
    services = web().services
    core_hours = recorded_core_hours(services.engine, job.id)
    try:
        return job_item(job, base, core_hours, services.publisher.asset_link)
    except PublicationError:  # a publication that cannot be read: the page still shows the job
        return None


@blueprint.post("/ui/jobs/<job_id>/dismiss")
def dismiss(job_id: str) -> Response:
    services = web().services
    principal = current_principal()
    job = services.jobs.dismiss(principal, job_id)
    target = f"/ui/jobs/{job.id}" if _still_there(principal, job.id) else "/ui/jobs"
    return redirect(f"{request.script_root}{target}", code=303)


def _still_there(principal: Any, job_id: str) -> bool:
    try:
        web().services.jobs.get(principal, job_id)
    except NoSuchJob:
        return False
    return True
