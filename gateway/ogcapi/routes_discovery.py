"""Landing page, conformance, OpenAPI, process list and process descriptions.

These delegate to pygeoapi's handlers where pygeoapi is conformant and wrap
them where it is not (DESIGN §8):

* landing page, OpenAPI document (JSON and Swagger/ReDoc HTML), process list
  and description HTML: pygeoapi's output as is;
* landing page JSON: pygeoapi's links to collections, tiling schemes and
  JSON-LD (which we do not serve) are removed;
* process list / description JSON: ``jobControlOptions`` (pygeoapi never lists
  ``dismiss``) and ``outputTransmission`` (pygeoapi says ``value`` only) come
  from the process definition, links are rebuilt (``self``, ``alternate``,
  ``execute``, ``job-list``) without pygeoapi's JSON-LD / ``?f=json`` variants;
* unknown process and bad ``limit``: our OGC exceptions, checked before
  pygeoapi is called (its own exception documents are not OGC's);
* conformance: ours -- pygeoapi declares Common/collections classes we do not
  implement and omits job-list, dismiss and html.

The format pygeoapi renders is the one :func:`~gateway.ogcapi.context.response_format`
negotiated (set on its ``APIRequest``), so both layers agree.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request
from pygeoapi.api import APIRequest
from pygeoapi.api import landing_page as pygeoapi_landing_page
from pygeoapi.api import openapi_ as pygeoapi_openapi
from pygeoapi.api.processes import describe_processes

from gateway.ogcapi.context import (
    F_HTML,
    html_response,
    json_response,
    ogcapi,
    response_format,
)
from gateway.ogcapi.documents import (
    CONFORMANCE_CLASSES,
    fix_landing_links,
    fix_process,
    process_list_links,
)
from gateway.ogcapi.problems import error_for_status
from gateway.paging import parse_limit

blueprint = Blueprint("ogcapi_discovery", __name__)

_PassThrough = tuple[dict[str, str], int, Any]
_DROP_HEADERS = {"content-type", "content-length"}


def _pygeoapi(handler: Callable[..., _PassThrough], fmt: str, *args: Any) -> _PassThrough:
    state = ogcapi()
    api_request = APIRequest.from_flask(request, state.api.locales)
    api_request._format = fmt  # the format we negotiated, not pygeoapi's guess
    headers, status, content = handler(state.api, api_request, *args)
    if int(status) >= 400:  # pygeoapi's exception documents are not OGC's: re-raise as ours
        try:
            detail = str(json.loads(content).get("description", content))
        except (ValueError, AttributeError):
            detail = "the request could not be processed"
        raise error_for_status(int(status), detail)
    return dict(headers), int(status), content


def _as_is(headers: dict[str, str], status: int, content: Any) -> Response:
    return Response(content, status=status, headers=headers)


def _kept_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in _DROP_HEADERS}


@blueprint.get("/")
def landing_page() -> Response:
    fmt = response_format()
    headers, status, content = _pygeoapi(pygeoapi_landing_page, fmt)
    if fmt == F_HTML:
        return _as_is(headers, status, content)
    document = json.loads(content)
    document["links"] = fix_landing_links(document.get("links", []), ogcapi().base_url)
    return json_response(document, headers=_kept_headers(headers))


@blueprint.get("/conformance")
def conformance_declaration() -> Response:
    document = {"conformsTo": list(CONFORMANCE_CLASSES)}
    if response_format() == F_HTML:
        return html_response(ogcapi().render("conformance.html", document))
    return json_response(document)


@blueprint.get("/openapi")
def openapi_document() -> Response:
    return _as_is(*_pygeoapi(pygeoapi_openapi, response_format()))


def _check_limit() -> None:
    """pygeoapi pages the process list; refuse what it would misread (no upper bound)."""
    parse_limit(request.args.get("limit"), default=1, maximum=None)


@blueprint.get("/processes", strict_slashes=False)
def process_list() -> Response:
    _check_limit()
    fmt = response_format()
    headers, status, content = _pygeoapi(describe_processes, fmt)
    if fmt == F_HTML:
        return _as_is(headers, status, content)
    state = ogcapi()
    document = json.loads(content)
    for summary in document.get("processes", []):
        fix_process(summary, state.services.jobs.process(summary["id"]), state.base_url)
    document["links"] = process_list_links(state.base_url)
    return json_response(document, headers=_kept_headers(headers))


@blueprint.get("/processes/<process_id>", strict_slashes=False)
def process_description(process_id: str) -> Response:
    state = ogcapi()
    definition = state.services.jobs.process(process_id)  # NoSuchProcess -> 404
    fmt = response_format()
    headers, status, content = _pygeoapi(describe_processes, fmt, process_id)
    if fmt == F_HTML:
        return _as_is(headers, status, content)
    document = json.loads(content)
    fix_process(document, definition, state.base_url)
    return json_response(document, headers=_kept_headers(headers))
