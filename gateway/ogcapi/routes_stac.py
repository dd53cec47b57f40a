"""The STAC Catalog of published results and one STAC Item per successful job.

==========================================  =====================================
``GET /stac/catalog.json``                  the caller's results (``item`` links,
                                            newest first; ``limit``, ``next``)
``GET /stac/items/{job id}.json``           the STAC Item of one job's results
==========================================  =====================================

Visibility is the job service's: a user sees the items of their own jobs (an
admin sees all); another user's job id is "not found". Jobs that did not
succeed, or whose published outputs expired (retention), have no item.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Response, request

from gateway.errors import NotFound, ServiceUnavailable
from gateway.http.security import current_principal
from gateway.jobs.records import JobQuery
from gateway.jobs.states import JobState
from gateway.ogcapi.context import json_response, ogcapi
from gateway.paging import DEFAULT_STAC_LIMIT, parse_limit
from gateway.publication.publisher import PublicationError
from gateway.publication.stac_items import (
    GEOJSON,
    catalog,
    catalog_url,
    has_item,
    job_item,
    recorded_core_hours,
)

blueprint = Blueprint("ogcapi_stac", __name__)


@blueprint.get("/stac/catalog.json")
def stac_catalog() -> Response:
    state = ogcapi()
    limit = parse_limit(request.args.get("limit"), default=DEFAULT_STAC_LIMIT)
    # only jobs with live published results, filtered by the store: a page is full
    # unless it is the last (filtering after paging returned short pages with a next)
    query = JobQuery(
        states=frozenset({JobState.SUCCESSFUL}),
        published=True,
        cursor=request.args.get("next") or None,
        limit=limit,
    )
    page = state.services.jobs.list(current_principal(), query)
    next_href = None
    if page.next_cursor:
        more = urlencode({"limit": limit, "next": page.next_cursor})
        next_href = f"{catalog_url(state.base_url)}?{more}"
    return json_response(catalog(state.base_url, page.jobs, next_href))


@blueprint.get("/stac/items/<job_id>.json")
def stac_item(job_id: str) -> Response:
    state = ogcapi()
    job = state.services.jobs.get(current_principal(), job_id)
    if job.state is not JobState.SUCCESSFUL:
        raise NotFound(f"job '{job.id}' is {job.state.ogc}; only successful jobs have a STAC Item")
    if not has_item(job):
        expired = job.extra.get("publication", {}).get("expired")
        why = f"were removed on {expired} (retention policy)" if expired else "are not recorded"
        raise NotFound(f"the published results of job '{job.id}' {why}")
    core_hours = recorded_core_hours(state.services.engine, job.id)
    try:
        item = job_item(job, state.base_url, core_hours, state.services.publisher.asset_link)
    except PublicationError as exc:
        raise ServiceUnavailable(f"cannot link the S3 objects: {exc.detail}") from None
    return json_response(item, content_type=GEOJSON)
