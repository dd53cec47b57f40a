"""Generic HTTP helpers every Flask surface shares: JSON/HTML responses, the JSON body.

The OGC API routes, the accounting routes and the admin API build their
answers with :func:`json_response` and read request bodies with
:func:`read_json_body` (400 for an empty or malformed body, 415 for a
non-JSON ``Content-Type``, 413 beyond the size limit).
Nothing here knows pygeoapi or any one protocol.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Response, request, send_file

from gateway.errors import BadRequest, UnsupportedMediaType
from gateway.http_input import decode_json

JSON = "application/json"
HTML = "text/html; charset=utf-8"


def json_response(
    document: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
    content_type: str = JSON,
) -> Response:
    try:
        body = json.dumps(document, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate stored before input was strict: escape it
        body = json.dumps(document, default=str).encode("ascii")
    return Response(body, status=status, headers=headers or {}, content_type=content_type)


def html_response(html: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(html, status=status, headers=headers or {}, content_type=HTML)


def send_published(path: Path, media_type: str, *, conditional: bool = False) -> Response:
    """A published output file with exactly ``media_type`` as its ``Content-Type``
    (``image/tiff; application=geotiff``, ``text/plain; charset=utf-8``): werkzeug
    would append a second ``charset`` to a ``text/*`` type that has one."""
    response = send_file(path, mimetype=media_type.split(";")[0], conditional=conditional)
    response.headers["Content-Type"] = media_type
    return response


def read_json_body() -> Any:
    """The decoded JSON request body (execute requests).

    A body with an explicit non-JSON ``Content-Type`` is refused with 415; a
    missing ``Content-Type`` is tolerated and the body parsed as strict JSON
    (:func:`gateway.http_input.decode_json`: 400 naming the offending value).
    Bodies over the size limit, sized or chunked, are refused with 413
    (:mod:`gateway.http_input`).
    """
    mimetype = request.mimetype
    if mimetype and mimetype != JSON and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(
            f"the execute request must be sent as {JSON}, not {request.content_type}"
        )
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise BadRequest("the request body is empty; send a JSON execute request")
    return decode_json(raw)
