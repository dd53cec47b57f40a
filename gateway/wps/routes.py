"""The ``/wps`` endpoint and the WPS 1.0.0 status documents, as a Flask blueprint.

``GET /wps`` takes KVP, ``POST /wps`` takes an XML request document (or a
form-encoded KVP body). ``GET /wps/status/<job id>`` is the WPS 1.0.0
``statusLocation``: the job's ExecuteResponse rendered from the job store.

Every failure becomes an OWS ExceptionReport (OWS 1.1 for WPS 1.0.0, OWS 2.0
for WPS 2.0.0) with its HTTP status -- never an HTML error page or a trace.
The caller is authenticated per request (``authenticator.authenticate``) for
every operation that touches jobs; GetCapabilities and DescribeProcess are
public discovery, like the OGC API process list (``/wps`` is among the public
paths while ``auth.public_discovery`` is on; off, the app's authentication hook
asks a token for every ``/wps`` request).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import cast

from flask import Blueprint, Flask, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import PathConverter

from gateway.errors import GatewayError, NoSuchJob, NoSuchProcess
from gateway.http.store_down import STORE_DOWN, store_unavailable
from gateway.identity.auth import Authenticator, Principal
from gateway.jobs.records import Job
from gateway.jobs.states import JobState
from gateway.services import Services
from gateway.wps import kvp
from gateway.wps.capabilities import capabilities_1, capabilities_2, negotiate
from gateway.wps.context import WpsContext
from gateway.wps.describe import describe_1, describe_2
from gateway.wps.exceptions import (
    NO_APPLICABLE,
    WpsError,
    exception_report,
    from_gateway,
)
from gateway.wps.execute import run_execute, xml_response
from gateway.wps.model import DescribeProcess, Execute, GetCapabilities, JobRequest, WpsRequest
from gateway.wps.outputs import raw_response
from gateway.wps.status import execute_response_1, result_2, status_info
from gateway.wps.xml import WPS2, XmlSyntaxError, parse_xml
from gateway.wps.xmlrequest import parse_xml_request, xml_version
from processes.definition import ProcessDefinition

log = logging.getLogger(__name__)

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _principal(ctx: WpsContext) -> Principal:
    """The caller, resolved for this request (werkzeug Headers: case-insensitive str->str)."""
    return ctx.authenticator.authenticate(cast(Mapping[str, str], request.headers))


def error_response(error: WpsError, version: str) -> Response:
    response = xml_response(exception_report([error], version), status=error.status)
    response.headers.update(error.headers)
    return response


def _read() -> tuple[WpsRequest, str]:
    """Parse the request; returns (request, version for error reports)."""
    if request.method == "GET" or request.mimetype in _FORM_TYPES:
        pairs = list(request.args.items(multi=True))
        if request.method == "POST":
            pairs += list(request.form.items(multi=True))
        version = kvp.requested_version(kvp.normalise(pairs))
        return kvp.parse_kvp(pairs), version
    root = parse_xml(request.get_data(cache=False))
    version = xml_version(root)
    return parse_xml_request(root), version


def _processes(ctx: WpsContext, req: DescribeProcess) -> list[ProcessDefinition]:
    if any(i.lower() == "all" for i in req.identifiers):
        return list(ctx.services.registry)
    found = []
    for identifier in req.identifiers:
        try:
            found.append(ctx.services.jobs.process(identifier))
        except NoSuchProcess as exc:
            error = from_gateway(exc, req.version)
            error.locator = error.locator or identifier
            raise error from None
    return found


def _live_job(ctx: WpsContext, principal: Principal, job_id: str) -> Job:
    """The job, unless it was dismissed: WPS 2.0 (OGC 14-065, 9.10) forgets a dismissed
    job, so its GetStatus, GetResult and a second Dismiss answer NoSuchJob. (The OGC
    API keeps its own rule: the status of a dismissed job says ``dismissed``.)"""
    job = ctx.services.jobs.get(principal, job_id)
    if job.state is JobState.DISMISSED:
        raise NoSuchJob(f"job '{job_id}' was dismissed")
    return job


def _job_operation(ctx: WpsContext, req: JobRequest) -> Response:
    principal = _principal(ctx)
    jobs = ctx.services.jobs
    try:
        job = _live_job(ctx, principal, req.job_id)
        if req.operation == "GetStatus":
            return xml_response(status_info(job))
        if req.operation == "Dismiss":
            return xml_response(status_info(jobs.dismiss(principal, req.job_id)))
        job = jobs.results(principal, req.job_id)
    except GatewayError as exc:
        error = from_gateway(exc, req.version)
        error.locator = req.job_id
        raise error from None
    process = jobs.process(job.process_id)
    if job.interface == "wps2" and job.response == "raw" and job.results:
        name = next((k for k in process.outputs if k in job.results), next(iter(job.results)))
        return raw_response(
            process,
            name,
            job.results[name],
            publication_root=ctx.services.publication_root,
            job_id=job.id,
        )
    return xml_response(result_2(process, job))


def _dispatch(ctx: WpsContext, req: WpsRequest) -> Response:
    if isinstance(req, GetCapabilities):
        version = negotiate(req)
        return xml_response(capabilities_2(ctx) if version == "2.0.0" else capabilities_1(ctx))
    if isinstance(req, DescribeProcess):
        processes = _processes(ctx, req)
        return xml_response(
            describe_2(processes) if req.version == "2.0.0" else describe_1(processes)
        )
    if isinstance(req, Execute):
        principal = _principal(ctx)
        return run_execute(ctx, principal, req)
    return _job_operation(ctx, req)


def wps_endpoint(ctx: WpsContext) -> Response:
    version = "1.0.0"
    try:
        req, version = _read()
        if not isinstance(req, GetCapabilities):
            version = req.version
        return _dispatch(ctx, req)
    except WpsError as exc:
        return error_response(exc, version)
    except GatewayError as exc:
        return error_response(from_gateway(exc, version), version)
    except XmlSyntaxError as exc:
        return error_response(WpsError(NO_APPLICABLE, str(exc), status=400), version)
    except RequestEntityTooLarge:
        text = "the request body exceeds the size limit"
        return error_response(WpsError(NO_APPLICABLE, text, status=413), version)


def job_status(ctx: WpsContext, job_id: str) -> Response:
    """The live WPS 1.0.0 ExecuteResponse of a job (its ``statusLocation``)."""
    lineage = request.args.get("lineage", "").lower() == "true"
    try:
        principal = _principal(ctx)
        job = ctx.services.jobs.get(principal, job_id)
        process = ctx.services.jobs.process(job.process_id)
        doc = execute_response_1(
            process,
            job,
            service_instance=ctx.service_instance,
            status_location=ctx.status_url(job.id, lineage=lineage),
            lineage=lineage,
        )
        return xml_response(doc)
    except GatewayError as exc:
        error = from_gateway(exc, "1.0.0")
        error.locator = error.locator or job_id
        return error_response(error, "1.0.0")


def _guess_version() -> str:
    """Report version for errors raised before a handler ran (app-wide hooks)."""
    if request.path.startswith("/wps/status/"):
        return "1.0.0"
    if request.method == "POST" and request.mimetype not in _FORM_TYPES:
        return "2.0.0" if WPS2.encode() in request.get_data(cache=True)[:4096] else "1.0.0"
    return kvp.requested_version(kvp.normalise(request.args.items(multi=True)))


def _hook_error(exc: GatewayError) -> Response:
    """OWS reports for errors from app-wide hooks (e.g. authentication before_request)."""
    version = _guess_version()
    return error_response(from_gateway(exc, version), version)


def _store_down(exc: Exception) -> Response:
    """The job store is down: an OWS report with status 503 (and Retry-After)."""
    return _hook_error(store_unavailable(exc))


def _unexpected(exc: Exception) -> Response:
    """Last resort: log the traceback, answer an OWS report without it (never a bare 500)."""
    if isinstance(exc, HTTPException):
        version = _guess_version()
        return error_response(
            WpsError(NO_APPLICABLE, exc.description or exc.name, status=exc.code or 500), version
        )
    log.exception("WPS request failed")
    version = _guess_version()
    return error_response(WpsError(NO_APPLICABLE, "internal server error"), version)


class _AnyJobId(PathConverter):
    """werkzeug's ``path``, newlines included: any ``/wps/status/...`` gets an OWS report."""

    regex = "[^/](?s:.)*?"


def register_wps(app: Flask, services: Services, authenticator: Authenticator) -> None:
    """Mount ``/wps`` and ``/wps/status/<job id>`` on ``app``.

    Errors raised for these paths by app-wide hooks (such as the OGC API's
    authentication ``before_request``) are answered as OWS exception reports
    too, through a blueprint error handler.
    """
    ctx = WpsContext(services, authenticator)
    app.url_map.converters["wps_job_id"] = _AnyJobId
    blueprint = Blueprint("wps", __name__)
    blueprint.add_url_rule("/wps", "endpoint", lambda: wps_endpoint(ctx), methods=["GET", "POST"])
    blueprint.add_url_rule(
        "/wps/status/<wps_job_id:job_id>", "status", lambda job_id: job_status(ctx, job_id)
    )
    blueprint.register_error_handler(GatewayError, _hook_error)
    for store_error in STORE_DOWN:
        blueprint.register_error_handler(store_error, _store_down)
    blueprint.register_error_handler(Exception, _unexpected)
    app.register_blueprint(blueprint)
