"""Execution, job status, job list, results, dismiss and published outputs.

Our own handlers (pygeoapi's answer an empty 201 body, offset paging, a
non-OGC results document and non-OGC exceptions); every job operation goes
through :class:`gateway.jobs.service.JobService` with the request's Principal.

Execution mode (18-062r2 /req/core/process-execute-default-execution-mode and
-auto-execution-mode): ``Prefer: respond-async`` on a process that can run
asynchronously -> 201, ``Location`` and ``Preference-Applied``, the status info
as body. Otherwise synchronous: the handler waits (the worker does the work)
up to ``server.sync_timeout_seconds`` and answers the results as
:mod:`gateway.ogcapi.results` encodes them for the request's ``response``
(document / raw), with ``Link: <job>; rel=monitor``
(/req/core/job-results-success-sync: the job exists and can be re-read). If the
job is not finished by then, the answer is the asynchronous one (201 +
``Location``) and the status message says so; nothing is lost, the job goes on.
``Prefer: wait=N`` (RFC 7240) shortens that wait to N seconds (never beyond
the server's limit) and is then echoed in ``Preference-Applied``;
``respond-async`` wins over ``wait`` when both are given (the process can run
asynchronously, and the client said it prefers that).

``GET /jobs/{id}/results`` answers the raw encodings (a bare value, ``Link``
headers, ``multipart/related`` for several outputs) when the execute request
named ``"response": "raw"`` (18-062r2 /req/core/job-results-async-raw-*), and
the results *document* (JSON mapping) otherwise -- also when the request left
``response`` out: clients that poll and then read JSON keep working.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
from flask import Blueprint, Response, request

from gateway.errors import JobFailed, NoSuchProcess, NotFound
from gateway.http.responses import send_published
from gateway.http.security import current_principal
from gateway.jobs.records import Job, SummaryPage
from gateway.ogcapi.context import (
    F_HTML,
    OgcApi,
    html_response,
    json_response,
    ogcapi,
    prefer_tokens,
    prefer_wait,
    read_json_body,
    response_format,
)
from gateway.ogcapi.documents import JSON, job_list, status_info
from gateway.ogcapi.job_filters import job_query
from gateway.ogcapi.problems import problem_response
from gateway.ogcapi.results import ResultsEncoder, media_type_of, published_file, s3_redirect
from gateway.paging import DEFAULT_JOB_LIMIT, parse_limit

blueprint = Blueprint("ogcapi_jobs", __name__)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _job_url(state: OgcApi, job_id: str) -> str:
    return state.url(f"/jobs/{job_id}")


# -- execution ------------------------------------------------------------------


@blueprint.post("/processes/<process_id>/execution")
def execute(process_id: str) -> Response:
    state = ogcapi()
    principal = current_principal()
    process = state.services.jobs.process(process_id)  # 404 before reading the body
    body = read_json_body()
    job = state.services.jobs.submit(principal, process_id, body)
    wants_async = "respond-async" in prefer_tokens()
    can_async = "async-execute" in process.jobControlOptions
    can_sync = "sync-execute" in process.jobControlOptions
    location = _job_url(state, job.id)
    if (wants_async and can_async) or not can_sync:
        headers = {"Location": location}
        if wants_async:
            headers["Preference-Applied"] = "respond-async"
        return json_response(status_info(job, state.base_url), 201, headers)

    timeout, applied = _sync_wait(state.services.settings.server.sync_timeout_seconds)
    job = state.services.jobs.wait(job.id, timeout)
    if not job.final:
        message = (
            f"{job.message or 'Job in progress'} -- not finished within the "
            f"{timeout:g} s of synchronous execution; it continues, poll {location}"
        )
        return json_response(
            status_info(job, state.base_url, message=message),
            201,
            {"Location": location, **applied},
        )
    headers = {"Link": f"<{location}>; rel=monitor", **applied}
    # the synchronous answer follows the request (1.0's default: raw), whatever the
    # job keeps for GET /jobs/{id}/results (document unless raw was named)
    return _results(state, job.id, headers, document=body.get("response") == "document")


def _sync_wait(limit: float) -> tuple[float, dict[str, str]]:
    """How long a synchronous execution waits, and the ``Preference-Applied`` header.

    ``Prefer: wait=N`` (RFC 7240 section 4.3; 18-062r2
    /rec/core/process-execute-honor-prefer) bounds the wait at N seconds, within
    the server's own ``limit``. It is reported as applied only when N itself was
    the bound: a larger N is cut to ``limit``, which is not what was asked.
    """
    wait = prefer_wait()
    if wait is None or wait > limit:
        return limit, {}
    return float(wait), {"Preference-Applied": f"wait={wait}"}


def _results(
    state: OgcApi, job_id: str, headers: dict[str, str] | None = None, *, document: bool
) -> Response:
    """The results of a finished job, or its failure as an exception document."""
    principal = current_principal()
    try:
        job = state.services.jobs.results(principal, job_id)
    except JobFailed as exc:
        return _failure(state.services.jobs.get(principal, job_id), exc, headers or {})
    if document:
        return json_response(job.results or {}, headers=headers)
    return _encoder(state, job).raw(job, headers)


def _encoder(state: OgcApi, job: Job) -> ResultsEncoder:
    try:
        declared = state.services.jobs.process(job.process_id).outputs
    except NoSuchProcess:  # the process was withdrawn after the job ran
        declared = {}
    return ResultsEncoder(declared, state.services.publication_root, state.base_url)


def _failure(job: Job, exc: JobFailed, headers: dict[str, str]) -> Response:
    """/req/core/job-results-failed: the job's own exception, with a status that fits it."""
    document = exc.document()
    error = job.error or {}
    for key in ("type", "title", "detail"):
        if isinstance(error.get(key), str) and error[key]:
            document[key] = error[key]
    status = error.get("status")
    if not (isinstance(status, int) and 400 <= status <= 599):
        status = exc.status
    document["status"] = status
    return problem_response(document, status, headers)


# -- job list -------------------------------------------------------------------


@blueprint.get("/jobs", strict_slashes=False)
def jobs() -> Response:
    state = ogcapi()
    principal = current_principal()
    fmt = response_format()
    limit = parse_limit(request.args.get("limit"), default=DEFAULT_JOB_LIMIT)
    query = job_query(request.args, limit)
    if query is None:
        page = SummaryPage(jobs=[], next_cursor=None)
    else:
        page = state.services.jobs.list_summaries(principal, query)
    kept = [(k, v) for k, v in request.args.items(multi=True) if k not in ("f", "next")]
    document = job_list(page, state.base_url, kept, fmt)
    if fmt == F_HTML:
        return html_response(
            state.render("jobs/index.html", {"jobs": document, "offset": 0, "now": _now()})
        )
    # orjson: a 100-job page in ~0.1 ms instead of ~1 ms with json (bench/README.md, phase 4)
    return Response(orjson.dumps(document, default=str), content_type=JSON)


# -- one job --------------------------------------------------------------------


@blueprint.get("/jobs/<job_id>")
def job_status(job_id: str) -> Response:
    state = ogcapi()
    job = state.services.jobs.get(current_principal(), job_id)
    document = status_info(job, state.base_url)
    if response_format() == F_HTML:
        return html_response(state.render("jobs/job.html", {"jobs": document, "now": _now()}))
    return json_response(document)


@blueprint.delete("/jobs/<job_id>")
def dismiss(job_id: str) -> Response:
    """Dismiss (/req/dismiss/job-dismiss-status): 200 and the status info, ``dismissed``.

    An active job is cancelled (its Slurm job too) and stays readable as
    dismissed; a finished one (successful, failed or dismissed before) is
    removed: from then on every read of it answers 404 no-such-job, and the
    worker deletes its workspace and published outputs. Its accounting stays.
    """
    state = ogcapi()
    job = state.services.jobs.dismiss(current_principal(), job_id)
    return json_response(status_info(job, state.base_url))


@blueprint.get("/jobs/<job_id>/results")
def results(job_id: str) -> Response:
    state = ogcapi()
    if response_format() == F_HTML:
        job = state.services.jobs.results(current_principal(), job_id)
        # the results as escaped text (a results value is user data: never markup or script)
        text = json.dumps(job.results or {}, indent=2, ensure_ascii=False, default=str)
        data: dict[str, Any] = {"job": {"id": job.id}, "result_text": text}
        return html_response(state.render("jobs/results/index.html", data))
    job = state.services.jobs.get(current_principal(), job_id)
    return _results(state, job_id, document=job.response != "raw")


@blueprint.get("/jobs/<job_id>/outputs/<path:name>")
def output_file(job_id: str, name: str) -> Response:
    """A published output file; only its owner (or an admin) may read it (S3: 302)."""
    state = ogcapi()
    job = state.services.jobs.get(current_principal(), job_id)
    moved = s3_redirect(state.services.publisher, job, name)
    if moved is not None:
        return moved
    path = published_file(state.services.publication_root, job.id, name)
    if path is None:
        raise NotFound(f"job '{job.id}' has no published output '{name}'")
    declared = None
    for value in (job.results or {}).values():
        if isinstance(value, dict) and str(value.get("href", "")).endswith(f"/outputs/{name}"):
            declared = value.get("type")
    return send_published(path, media_type_of(path.name, declared), conditional=True)
