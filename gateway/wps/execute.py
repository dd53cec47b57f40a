"""Execute (WPS 1.0.0 and 2.0.0) through the shared job service.

The WPS request becomes an OGC API execute body (inputs typed by the process
schema, references kept as ``{"href": ...}`` for the gateway's staging) and
is submitted with :meth:`gateway.jobs.service.JobService.submit` -- the same
validation, identity, quota and job store as OGC API. Synchronous requests
wait for the job (up to ``server.sync_timeout_seconds``); asynchronous ones
answer at once (WPS 1.0.0: ExecuteResponse with a ``statusLocation``;
WPS 2.0.0: StatusInfo). ``auto`` runs asynchronously: HPC jobs queue.
"""

from __future__ import annotations

from typing import Any

from flask import Response

from gateway.identity.auth import Principal
from gateway.jobs.execute_request import SITE_MEMBER
from gateway.jobs.records import Job
from gateway.jobs.states import JobState
from gateway.publication.values import OCTET
from gateway.wps.context import WpsContext
from gateway.wps.datatypes import COMPLEX, is_xml_type, to_json
from gateway.wps.describe import SITE_INPUT
from gateway.wps.exceptions import NO_APPLICABLE, NO_SUCH_MODE, WpsError, invalid
from gateway.wps.model import Execute, InputValue
from gateway.wps.outputs import input_type, raw_response
from gateway.wps.status import execute_response_1, failure_text, result_2, status_info
from gateway.wps.xml import XML_MEDIA_TYPE, to_bytes
from processes.definition import ProcessDefinition


def xml_response(element: Any, status: int = 200) -> Response:
    response = Response(to_bytes(element), status=status, content_type=XML_MEDIA_TYPE)
    response.headers["Cache-Control"] = "no-store"
    return response


def _code(req: Execute, v1: str, v2: str) -> str:
    return v1 if req.version == "1.0.0" else v2


def _check_format(process: ProcessDefinition, value: InputValue, req: Execute) -> None:
    io = input_type(process, value.identifier)
    if io.kind != COMPLEX or not value.mime_type or value.href is not None:
        return
    wanted = value.mime_type.split(";")[0].strip().lower()
    offered = {m.split(";")[0].strip().lower() for m in io.mime_types}
    if wanted in offered or (is_xml_type(wanted) and any(is_xml_type(m) for m in offered)):
        return
    if OCTET in offered and io.encoding is None:  # any bytes (a CWL File without format)
        return
    raise WpsError(
        _code(req, "InvalidParameterValue", "NoSuchFormat"),
        f"input '{value.identifier}' does not accept {value.mime_type}; "
        f"use one of {', '.join(io.mime_types)}",
        locator=value.identifier,
        status=400,
    )


def ogc_body(process: ProcessDefinition, req: Execute) -> dict[str, Any]:
    """The OGC API execute body equivalent to a WPS Execute request."""
    collected: dict[str, list[Any]] = {}
    site: str | None = None
    for value in req.inputs:
        if value.identifier == SITE_INPUT and SITE_INPUT not in process.inputs:
            site = value.text if value.text is not None else ""
            continue
        if value.identifier not in process.inputs:
            raise WpsError(
                _code(req, "InvalidParameterValue", "NoSuchInput"),
                f"process '{process.id}' has no input '{value.identifier}'",
                locator=value.identifier,
                status=400,
            )
        _check_format(process, value, req)
        io = input_type(process, value.identifier)
        collected.setdefault(value.identifier, []).append(to_json(io, value))
    inputs = {k: v[0] if len(v) == 1 else v for k, v in collected.items()}
    outputs: dict[str, Any] = {}
    for out in req.outputs:
        if out.identifier not in process.outputs:
            raise WpsError(
                _code(req, "InvalidParameterValue", "NoSuchOutput"),
                f"process '{process.id}' has no output '{out.identifier}'",
                locator=out.identifier,
                status=400,
            )
        mode = "reference" if out.as_reference else "value"
        outputs[out.identifier] = {"transmissionMode": mode}
    body: dict[str, Any] = {"inputs": inputs, "response": req.response}
    if site is not None:
        body[SITE_MEMBER] = site.strip() or None
    if outputs:
        body["outputs"] = outputs
    return body


def _wants_async(process: ProcessDefinition, req: Execute) -> bool:
    options = process.jobControlOptions
    if req.version == "1.0.0" and req.status and req.mode != "async":
        raise invalid("status", "status=true requires storeExecuteResponse=true")
    if req.mode == "auto":
        return "async-execute" in options
    wanted = "async-execute" if req.mode == "async" else "sync-execute"
    if wanted not in options:
        raise WpsError(
            _code(req, "InvalidParameterValue", NO_SUCH_MODE),
            f"process '{process.id}' does not offer {wanted}",
            locator="storeExecuteResponse" if req.version == "1.0.0" else "mode",
            status=400,
        )
    return req.mode == "async"


def run_execute(ctx: WpsContext, principal: Principal, req: Execute) -> Response:
    """Submit the job and answer as the request asked."""
    jobs = ctx.services.jobs
    process = jobs.process(req.identifier)
    is_async = _wants_async(process, req)
    body = ogc_body(process, req)
    interface = "wps1" if req.version == "1.0.0" else "wps2"
    job = jobs.submit(principal, process.id, body, interface=interface)
    if not is_async:
        job = jobs.wait(job.id, timeout=ctx.sync_timeout)
    if req.version == "1.0.0":
        return _answer_1(ctx, process, job, req, stored=is_async)
    return _answer_2(ctx, process, job, req)


def _raw(ctx: WpsContext, process: ProcessDefinition, job: Job, req: Execute) -> Response:
    results = job.results or {}
    wanted = [o.identifier for o in req.outputs] or [k for k in process.outputs if k in results]
    if len(req.outputs) > 1:
        raise invalid("response", "a raw response carries exactly one output")
    if not wanted or wanted[0] not in results:
        raise WpsError(NO_APPLICABLE, f"job '{job.id}' produced no value for the raw output")
    return raw_response(
        process,
        wanted[0],
        results[wanted[0]],
        publication_root=ctx.services.publication_root,
        job_id=job.id,
    )


def _answer_1(
    ctx: WpsContext, process: ProcessDefinition, job: Job, req: Execute, *, stored: bool
) -> Response:
    if req.response == "raw" and job.final:
        if job.state is not JobState.SUCCESSFUL:
            raise WpsError(NO_APPLICABLE, failure_text(job))
        return _raw(ctx, process, job, req)
    # Stored (async) requests, and sync requests that outlived the sync timeout,
    # get a statusLocation the client can poll.
    location = ctx.status_url(job.id, lineage=req.lineage) if stored or not job.final else None
    doc = execute_response_1(
        process,
        job,
        service_instance=ctx.service_instance,
        status_location=location,
        lineage=req.lineage,
    )
    return xml_response(doc)


def _answer_2(ctx: WpsContext, process: ProcessDefinition, job: Job, req: Execute) -> Response:
    if not job.final:
        return xml_response(status_info(job))
    if job.state is not JobState.SUCCESSFUL:
        raise WpsError(NO_APPLICABLE, failure_text(job), locator=job.id)
    if req.response == "raw":
        return _raw(ctx, process, job, req)
    return xml_response(result_2(process, job))
