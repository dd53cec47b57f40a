"""Surface: ``/triggers`` -- a user's stored rules, their activations, manual activation.

Authenticated like ``/jobs`` (the app's authentication hook) and owner-isolated
the same way: a user sees, changes and activates only their own triggers
(another user's id answers 404); ``hpc-admin`` sees all. Errors are the
gateway's OGC exception documents.

=========================================  ==========================================
``GET /triggers``                          the caller's triggers (JSON; HTML with ``f=html``)
``POST /triggers``                         create (201, ``Location``); 400 for a bad rule
``GET /triggers/{id}``                     one trigger, its feed state and activations
``PUT /triggers/{id}``                     replace the rule
``DELETE /triggers/{id}``                  delete (204); its jobs stay
``GET /triggers/{id}/activations``         its activations (event, outcome, job)
``POST /triggers/{id}/activations``        manual activation: area + time (201; 200
                                           with the first one for a known ``eventId``)
=========================================  ==========================================
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, render_template_string, request

from gateway.errors import NotFound
from gateway.http.responses import html_response, json_response, read_json_body
from gateway.http.security import current_principal
from gateway.services import Services
from gateway.triggers.records import Activation, Trigger
from gateway.triggers.service import TriggerService

blueprint = Blueprint("hpcgw_triggers", __name__)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Triggers</title></head>
<body><h1>Triggers</h1>
<table id="triggers" border="1" cellpadding="4">
<tr><th>title</th><th>owner</th><th>process</th><th>source</th><th>enabled</th>
<th>last poll</th><th>last problem</th></tr>
{% for t in triggers %}
<tr id="trigger-{{ t.id }}"><td><a href="{{ t.links[0].href }}">{{ t.title }}</a></td>
<td>{{ t.owner }}</td><td>{{ t.process }}</td><td>{{ t.source.type }}</td>
<td>{{ 'yes' if t.enabled else 'no' }}</td><td>{{ t.lastPolled or '' }}</td>
<td>{{ t.lastError or '' }}</td></tr>
{% endfor %}
</table></body></html>
"""


def _service() -> TriggerService:
    services: Services = current_app.extensions["hpcgw"]
    if services.triggers is None:
        raise NotFound("triggers are not enabled on this server")
    return services.triggers


def _base() -> str:
    services: Services = current_app.extensions["hpcgw"]
    return services.settings.server.base_url.rstrip("/")


def trigger_document(
    trigger: Trigger, activations: list[Activation] | None = None
) -> dict[str, Any]:
    """A trigger as ``/triggers`` shows it: the rule, owner, feed state, links."""
    base = _base()
    doc: dict[str, Any] = {
        "id": trigger.id,
        "owner": trigger.owner.username,
        **trigger.rule.wire(),
        "created": trigger.created.isoformat(),
        "updated": trigger.updated.isoformat(),
        "lastPolled": trigger.feed.last_polled.isoformat() if trigger.feed.last_polled else None,
        "nextPoll": trigger.feed.next_poll_at.isoformat() if trigger.feed.next_poll_at else None,
        "lastError": trigger.feed.last_error,
        "links": [
            {"href": f"{base}/triggers/{trigger.id}", "rel": "self", "type": "application/json"},
            {"href": f"{base}/triggers/{trigger.id}/activations", "rel": "activations"},
        ],
    }
    if activations is not None:
        doc["activations"] = [_activation(a) for a in activations]
    return doc


def _activation(activation: Activation) -> dict[str, Any]:
    doc = activation.wire()
    if doc["jobID"]:
        doc["links"] = [{"href": f"{_base()}/jobs/{doc['jobID']}", "rel": "job"}]
    return doc


def _wants_html() -> bool:
    return request.args.get("f") == "html" or (
        request.args.get("f") is None
        and request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"
    )


@blueprint.get("/triggers")
def list_triggers() -> Response:
    docs = [trigger_document(t) for t in _service().listing(current_principal())]
    if _wants_html():
        return html_response(render_template_string(_PAGE, triggers=docs))
    return json_response({"triggers": docs})


@blueprint.post("/triggers")
def create_trigger() -> Response:
    trigger = _service().create(current_principal(), read_json_body())
    location = f"{_base()}/triggers/{trigger.id}"
    return json_response(trigger_document(trigger, []), 201, {"Location": location})


@blueprint.get("/triggers/<trigger_id>")
def get_trigger(trigger_id: str) -> Response:
    service = _service()
    trigger = service.get(current_principal(), trigger_id)
    return json_response(trigger_document(trigger, service.activations(trigger)))


@blueprint.put("/triggers/<trigger_id>")
def replace_trigger(trigger_id: str) -> Response:
    service = _service()
    trigger = service.replace(current_principal(), trigger_id, read_json_body())
    return json_response(trigger_document(trigger, service.activations(trigger)))


@blueprint.delete("/triggers/<trigger_id>")
def delete_trigger(trigger_id: str) -> Response:
    _service().delete(current_principal(), trigger_id)
    return Response(status=204)


@blueprint.get("/triggers/<trigger_id>/activations")
def list_activations(trigger_id: str) -> Response:
    service = _service()
    trigger = service.get(current_principal(), trigger_id)
    return json_response({"activations": [_activation(a) for a in service.activations(trigger)]})


@blueprint.post("/triggers/<trigger_id>/activations")
def activate(trigger_id: str) -> Response:
    activation, new = _service().activate(current_principal(), trigger_id, read_json_body())
    return json_response(_activation(activation), 201 if new else 200)


def register_triggers(app: Flask) -> None:
    app.register_blueprint(blueprint)
