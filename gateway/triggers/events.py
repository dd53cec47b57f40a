"""Events a trigger may fire on: parsed from an FDSN event GeoJSON feed, and the criteria.

The FDSN event web service's GeoJSON answer (what EMSC's
``/fdsnws/event/1/query?format=json`` and USGS's ``format=geojson`` serve) is a
FeatureCollection of Point features whose coordinates are ``[lon, lat,
depth]``; the properties differ between providers:

* USGS: ``mag``, ``time`` in milliseconds since the epoch, ``place``; the
  depth is the third coordinate, in km, positive down;
* EMSC: ``mag``, ``time`` as ISO 8601 text, ``depth`` (km, positive down),
  ``flynn_region``, ``unid``; the third coordinate is the depth negated.

:func:`parse_fdsn_geojson` reads both into :class:`Event` records; a feature it
cannot read is skipped and counted (the feed as a whole is refused only when
it is not such a collection). :func:`matches` applies a rule's criteria.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import shapely
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from gateway.triggers.geometry import around, polygon_shape
from gateway.triggers.records import Criteria

log = logging.getLogger(__name__)


class FeedError(ValueError):
    """A feed answer that is not what its source type promises (reported on the trigger)."""


@dataclass(frozen=True)
class Event:
    """Something that happened somewhere at some time: an earthquake, a new acquisition."""

    id: str
    time: datetime
    #: The area of the event: a box around an epicentre, or an item's footprint box.
    bbox: tuple[float, float, float, float]
    lon: float
    lat: float
    depth_km: float | None = None
    magnitude: float | None = None
    region: str | None = None
    #: The event's own page or STAC Item link, when it has one.
    href: str | None = None
    #: The STAC asset the rule names (``stac-search`` events only).
    asset_href: str | None = None

    def record(self) -> dict[str, Any]:
        """The event as stored with its activation and shown in ``/triggers/{id}``."""
        out = asdict(self)
        out["time"] = self.time.isoformat()
        out["bbox"] = list(self.bbox)
        return {k: v for k, v in out.items() if v is not None}


def matches(event: Event, criteria: Criteria) -> str | None:
    """None when ``event`` meets every bound of ``criteria``; else why it does not."""
    c = criteria
    if c.min_magnitude is not None and (
        event.magnitude is None or event.magnitude < c.min_magnitude
    ):
        return f"magnitude {event.magnitude} below {c.min_magnitude}"
    if c.max_magnitude is not None and (
        event.magnitude is None or event.magnitude > c.max_magnitude
    ):
        return f"magnitude {event.magnitude} above {c.max_magnitude}"
    if c.min_depth_km is not None and (event.depth_km is None or event.depth_km < c.min_depth_km):
        return f"depth {event.depth_km} km shallower than {c.min_depth_km} km"
    if c.max_depth_km is not None and (event.depth_km is None or event.depth_km > c.max_depth_km):
        return f"depth {event.depth_km} km deeper than {c.max_depth_km} km"
    if c.after is not None and event.time < c.after:
        return f"time {event.time.isoformat()} before {c.after.isoformat()}"
    if c.before is not None and event.time > c.before:
        return f"time {event.time.isoformat()} after {c.before.isoformat()}"
    where = _footprint(event)
    if c.bbox is not None and not box(*c.bbox).intersects(where):
        return "outside the region's bbox"
    if c.polygon is not None and not polygon_shape(c.polygon).intersects(where):
        return "outside the region's polygon"
    return None


def _footprint(event: Event) -> BaseGeometry:
    """The epicentre of an earthquake (depth known), else the event's box."""
    if event.depth_km is not None or event.magnitude is not None:
        return shapely.Point(event.lon, event.lat)
    return box(*event.bbox)


def read_limited(resp: httpx.Response, limit: int) -> bytes:
    """The body of a streamed answer, refused (FeedError) beyond ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    for chunk in resp.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise FeedError(f"the answer is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# -- FDSN event GeoJSON ---------------------------------------------------------------


def parse_fdsn_geojson(body: bytes, half_width: float) -> tuple[list[Event], int]:
    """The events of an FDSN GeoJSON answer and how many features were unreadable.

    Raises :class:`FeedError` when the body is not a GeoJSON FeatureCollection.
    """
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FeedError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise FeedError("not a GeoJSON FeatureCollection")
    features = doc.get("features")
    if not isinstance(features, list):
        raise FeedError("the FeatureCollection has no 'features' list")
    events: list[Event] = []
    bad = 0
    for feature in features:
        try:
            events.append(_fdsn_event(feature, half_width))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            bad += 1
            log.info("feed feature skipped: %s", exc)
    return events, bad


def _fdsn_event(feature: Any, half_width: float) -> Event:
    props = feature.get("properties") or {}
    coords = feature["geometry"]["coordinates"]
    lon, lat = float(coords[0]), float(coords[1])
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValueError(f"coordinates out of range: {lon}, {lat}")
    if props.get("depth") is not None:
        depth: float | None = float(props["depth"])
    elif len(coords) > 2 and coords[2] is not None:
        depth = abs(float(coords[2]))
    else:
        depth = None
    event_id = str(feature.get("id") or props.get("unid") or props.get("source_id") or "")
    if not event_id:
        raise ValueError("feature without an id")
    mag = props.get("mag")
    return Event(
        id=event_id[:200],
        time=_event_time(props["time"]),
        bbox=around(lon, lat, half_width),
        lon=lon,
        lat=lat,
        depth_km=depth,
        magnitude=None if mag is None else float(mag),
        region=props.get("flynn_region") or props.get("place"),
        href=props.get("url"),
    )


def _event_time(raw: Any) -> datetime:
    """Milliseconds since the epoch (USGS) or ISO 8601 text (EMSC), as aware UTC."""
    if isinstance(raw, bool):
        raise ValueError("time is not a time")
    if isinstance(raw, int | float):
        return datetime.fromtimestamp(raw / 1000.0, tz=UTC)
    parsed = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
