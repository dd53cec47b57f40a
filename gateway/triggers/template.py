"""The input template of a trigger: ``{{event.<field>}}`` placeholders filled from an event.

A string that is *only* a placeholder becomes the value itself, typed (a
number, the bbox list); a placeholder inside longer text is replaced by its
text. The fields:

========================  =================================================
``{{event.id}}``          the event id (the feed's, or the STAC Item id)
``{{event.time}}``        its time, RFC 3339 UTC (``2026-12-07T10:00:00+00:00``)
``{{event.date}}``        its date (``2026-12-07``)
``{{event.lon}}``         longitude of the epicentre / footprint centre
``{{event.lat}}``         latitude
``{{event.depthKm}}``     depth in km (earthquakes)
``{{event.magnitude}}``   magnitude (earthquakes)
``{{event.bbox}}``        [min lon, min lat, max lon, max lat]: the box around
                          the epicentre (``areaHalfWidthDegrees``) or the footprint
``{{event.region}}``      the feed's region name
``{{event.href}}``        the event page / STAC Item link
``{{event.assetHref}}``   the STAC asset the rule names
========================  =================================================

An unknown field is refused when the trigger is created; a field the event
does not have (no magnitude for a STAC item) refuses the activation.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from gateway.triggers.events import Event

_PLACEHOLDER = re.compile(r"\{\{\s*event\.([A-Za-z]+)\s*\}\}")

FIELDS = (
    "id",
    "time",
    "date",
    "lon",
    "lat",
    "depthKm",
    "magnitude",
    "bbox",
    "region",
    "href",
    "assetHref",
)

#: What the template is checked with when a trigger is created: every field filled.
SAMPLE = Event(
    id="sample-event",
    time=datetime(2026, 1, 1, tzinfo=UTC),
    bbox=(0.0, 0.0, 1.0, 1.0),
    lon=0.5,
    lat=0.5,
    depth_km=10.0,
    magnitude=6.0,
    region="SAMPLE REGION",
    href="https://example.org/event/sample-event",
    asset_href="https://example.org/item/sample/asset.tif",
)


class TemplateError(ValueError):
    """The template names a field that is unknown, or that the event lacks."""


def _value(event: Event, field: str) -> Any:
    values: dict[str, Any] = {
        "id": event.id,
        "time": event.time.isoformat(),
        "date": event.time.date().isoformat(),
        "lon": event.lon,
        "lat": event.lat,
        "depthKm": event.depth_km,
        "magnitude": event.magnitude,
        "bbox": list(event.bbox),
        "region": event.region,
        "href": event.href,
        "assetHref": event.asset_href,
    }
    if field not in values:
        raise TemplateError(f"unknown placeholder {{{{event.{field}}}}}; use one of {FIELDS}")
    if values[field] is None:
        raise TemplateError(f"event {event.id} has no {field} for {{{{event.{field}}}}}")
    return values[field]


def render(template: Any, event: Event) -> Any:
    """``template`` (the rule's inputs) with every placeholder filled from ``event``."""
    if isinstance(template, dict):
        return {k: render(v, event) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, event) for v in template]
    if not isinstance(template, str):
        return template
    whole = _PLACEHOLDER.fullmatch(template.strip())
    if whole is not None:
        return _value(event, whole.group(1))
    return _PLACEHOLDER.sub(lambda m: str(_value(event, m.group(1))), template)
