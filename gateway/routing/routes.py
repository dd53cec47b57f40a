"""Surface: ``GET /status/sites`` -- every site, whether it takes jobs, and its last probe.

JSON by default; HTML for people with ``?f=html`` (or a browser's ``Accept``).
Each site: its adapter, ``enabled``, partitions, data sources, and the latest
health probe the worker recorded (``up``, ``latencySeconds``, when, since
when, what failed; ``stale`` when no worker probed it lately). ``takesJobs``
is what routing concludes now: enabled and not known to be down.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, render_template_string, request

from gateway.http.responses import html_response, json_response
from gateway.services import Services

blueprint = Blueprint("hpcgw_routing", __name__)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>HPC sites</title></head>
<body><h1>HPC sites</h1>
<table id="sites" border="1" cellpadding="4">
<tr><th>site</th><th>adapter</th><th>takes jobs</th><th>last probe</th><th>latency</th>
<th>since</th><th>detail</th></tr>
{% for s in sites %}
<tr id="site-{{ s.site }}" data-up="{{ s.health.up if s.health else '' }}">
<td>{{ s.site }}</td><td>{{ s.adapter }}</td><td>{{ 'yes' if s.takesJobs else 'no' }}</td>
<td>{% if s.health %}{{ 'up' if s.health.up else 'DOWN' }}{% if s.health.stale %} (stale){% endif %}
 at {{ s.health.checked }}{% else %}not probed yet{% endif %}</td>
<td>{% if s.health and s.health.latencySeconds is not none -%}
{{ '%.1f' % (s.health.latencySeconds * 1000) }} ms{% endif %}</td>
<td>{{ s.health.since if s.health else '' }}</td>
<td>{{ (s.health.detail or '') if s.health else ('disabled' if not s.enabled else '') }}</td></tr>
{% endfor %}
</table></body></html>
"""


def _services() -> Services:
    return current_app.extensions["hpcgw"]


def site_statuses(services: Services) -> list[dict[str, Any]]:
    """Every configured site with its settings and latest probe, in configuration order."""
    latest = services.health.latest() if services.health is not None else {}
    out = []
    for name, site in services.settings.sites.items():
        health = latest.get(name)
        stale = services.health.stale(health) if health and services.health else True
        down = health is not None and not health.up and not stale
        out.append(
            {
                "site": name,
                "adapter": site.adapter,
                "enabled": site.enabled,
                "takesJobs": site.enabled and not down,
                "partitions": list(site.partitions),
                "data": site.data.model_dump(),
                "health": health.to_dict(stale) if health is not None else None,
            }
        )
    return out


@blueprint.get("/status/sites")
def status_sites() -> Response:
    sites = site_statuses(_services())
    wants_html = request.args.get("f") == "html" or (
        request.args.get("f") is None
        and request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"
    )
    if wants_html:
        return html_response(render_template_string(_PAGE, sites=sites))
    return json_response({"sites": sites})


def register_routing(app: Flask) -> None:
    app.register_blueprint(blueprint)
