"""OGC API - Processes - Part 2: Deploy, Replace, Undeploy (draft OGC 20-044).

=============================================  =====================================
``POST /processes``                            deploy (ogcapppkg or CWL) -> 201, Location
``PUT /processes/{id}``                        replace -> 204
``DELETE /processes/{id}``                     undeploy -> 204
``GET /processes/{id}/package``                the package as deployed (CWL JSON or ogcapppkg)
=============================================  =====================================

``?w=`` picks one process of a CWL ``$graph`` document. The rules (roles,
ownership, immutable built-ins, 409) are :class:`gateway.apppkg.service.DeployService`'s;
this module only reads the request and shapes the answer. ``/processes`` and
``/processes/{id}`` are public paths for discovery (GET), so the write methods
authenticate the caller themselves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import cast

from flask import Blueprint, Response, request

from gateway.apppkg.body import CWL_TYPES, OGCAPPPKG, DeployRequest, parse_body
from gateway.apppkg.service import DeployService
from gateway.errors import BadRequest, NoSuchProcess
from gateway.http.security import request_principal
from gateway.identity.auth import Principal
from gateway.ogcapi.context import json_response, ogcapi
from gateway.ogcapi.documents import fix_process
from processes.package import PackagedDefinition

blueprint = Blueprint("ogcapi_deploy", __name__)

CWL_JSON = CWL_TYPES[2]
_W = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _service() -> DeployService:
    service = ogcapi().services.deploy
    if service is None:
        raise NoSuchProcess("this server does not deploy processes")
    return service


def _caller() -> Principal:
    """The caller, a deployer (authenticated here: these paths are public for GET)."""
    principal = request_principal()
    if principal is None:
        principal = ogcapi().authenticator.authenticate(cast(Mapping[str, str], request.headers))
    _service().may_deploy(principal)
    return principal


def _deploy_request() -> tuple[DeployRequest, str]:
    """The body as a :class:`DeployRequest` and the ``w`` (``$graph`` entry) parameter."""
    w = request.args.get("w", "")
    if w and not _W.match(w):
        raise BadRequest(f"w must name one process of the CWL $graph (matching {_W.pattern})")
    max_bytes = ogcapi().services.settings.apppkg.max_package_bytes
    body = parse_body(request.get_data(cache=False), request.mimetype, max_bytes)
    return body, f"#{w}" if w else ""


def _summary(definition: PackagedDefinition) -> dict[str, object]:
    state = ogcapi()
    document = definition.ogc_summary()
    fix_process(document, definition, state.base_url)
    return document


@blueprint.post("/processes", strict_slashes=False)
def deploy() -> Response:
    caller = _caller()
    body, entry = _deploy_request()
    definition = _service().deploy(caller, body, entry)
    location = ogcapi().url(f"/processes/{definition.id}")
    return json_response(_summary(definition), status=201, headers={"Location": location})


@blueprint.put("/processes/<process_id>", strict_slashes=False)
def replace(process_id: str) -> Response:
    caller = _caller()
    body, entry = _deploy_request()
    _service().replace(caller, process_id, body, entry)
    return Response(status=204)


@blueprint.delete("/processes/<process_id>", strict_slashes=False)
def undeploy(process_id: str) -> Response:
    _service().undeploy(_caller(), process_id)
    return Response(status=204)


@blueprint.get("/processes/<process_id>/package", strict_slashes=False)
def package(process_id: str) -> Response:
    """The package: CWL as JSON by default, an ogcapppkg document when asked for."""
    definition = _service().package(process_id)
    cwl = json.loads(definition.package)
    best = request.accept_mimetypes.best_match([CWL_JSON, OGCAPPPKG], default=CWL_JSON)
    if best == OGCAPPPKG:
        description = {**_summary(definition), **definition.ogc_description()}
        document = {"processDescription": description, "executionUnit": {"unit": cwl}}
        return json_response(document, content_type=OGCAPPPKG)
    return json_response(cwl, content_type=CWL_JSON)
