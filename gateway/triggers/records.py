"""What a trigger is: the rule a user writes (validated) and the records the store reads.

A rule (:class:`TriggerRule`, the JSON body of ``POST /triggers``)::

    {"title": "Strong shallow earthquakes -> sar-change",
     "process": "sar-change",
     "source": {"type": "fdsn-event", "url": "https://.../fdsnws/event/1/query?format=json",
                "intervalSeconds": 300},
     "criteria": {"minMagnitude": 5.5, "maxDepthKm": 30, "bbox": [-30, 25, 50, 72]},
     "areaHalfWidthDegrees": 0.5,
     "inputs": {"area": {"bbox": "{{event.bbox}}"}, "after": "{{event.time}}"}}

Sources: ``fdsn-event`` (an FDSN event web-service GeoJSON feed, as EMSC and
USGS serve it), ``stac-search`` (new items of STAC collections over an area,
from a STAC API item search) and ``manual`` (only ``POST
/triggers/{id}/activations``; every source accepts manual activations too).
The input template's ``{{event.<field>}}`` placeholders are listed in
:mod:`gateway.triggers.template`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from gateway.jobs.records import Owner
from gateway.triggers.geometry import polygon_shape


class _Model(BaseModel):
    """camelCase on the wire (as the OGC documents), unknown members refused."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class FdsnSource(_Model):
    """An FDSN event feed in GeoJSON (``format=geojson`` / ``format=json``), polled."""

    type: Literal["fdsn-event"]
    url: str = Field(pattern=r"^https?://", max_length=2000)
    interval_seconds: float = Field(default=300.0, ge=1.0, le=86400.0)


class StacSearchSource(_Model):
    """A STAC API item search (``POST {url}``, url ending in ``/search``), polled."""

    type: Literal["stac-search"]
    url: str = Field(pattern=r"^https?://", max_length=2000)
    collections: list[str] = Field(min_length=1, max_length=20)
    #: The asset whose href ``{{event.assetHref}}`` gives (else the item's own link).
    asset: str | None = Field(default=None, max_length=128)
    interval_seconds: float = Field(default=600.0, ge=1.0, le=86400.0)


class ManualSource(_Model):
    """No feed: the trigger fires only on ``POST /triggers/{id}/activations``."""

    type: Literal["manual"]


Source = Annotated[FdsnSource | StacSearchSource | ManualSource, Field(discriminator="type")]

BBox = Annotated[list[float], Field(min_length=4, max_length=4)]


class Criteria(_Model):
    """What an event must be to fire the trigger (every given bound must hold)."""

    min_magnitude: float | None = None
    max_magnitude: float | None = None
    min_depth_km: float | None = None
    max_depth_km: float | None = None
    #: [min lon, min lat, max lon, max lat] the event (epicentre, or item footprint) is in.
    bbox: BBox | None = None
    #: A GeoJSON Polygon (lon/lat) the event must lie in (or intersect, for STAC items).
    polygon: dict[str, Any] | None = None
    #: Only events at or after / before these times.
    after: datetime | None = None
    before: datetime | None = None

    @field_validator("bbox")
    @classmethod
    def _ordered(cls, bbox: list[float] | None) -> list[float] | None:
        if bbox is not None and not (bbox[0] <= bbox[2] and bbox[1] <= bbox[3]):
            raise ValueError("bbox must be [min lon, min lat, max lon, max lat]")
        return bbox

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, polygon: dict[str, Any] | None) -> dict[str, Any] | None:
        if polygon is None:
            return None
        polygon_shape(polygon)  # raises ValueError with the reason
        return polygon


class TriggerRule(_Model):
    """A trigger as its owner writes it (``POST /triggers``, ``PUT /triggers/{id}``)."""

    title: str = Field(min_length=1, max_length=255)
    process: str = Field(min_length=1, max_length=128)
    inputs: dict[str, Any]
    source: Source
    criteria: Criteria = Field(default_factory=Criteria)
    #: Half the side of the box around an epicentre given as ``{{event.bbox}}``.
    area_half_width_degrees: float = Field(default=0.5, gt=0, le=10)
    #: The site jobs should run at (``hpcSite`` of the execute request); None: routed.
    site: str | None = Field(default=None, max_length=64)
    enabled: bool = True

    @model_validator(mode="after")
    def _dates(self) -> TriggerRule:
        c = self.criteria
        if c.after is not None and c.before is not None and c.after > c.before:
            raise ValueError("criteria.after must not be later than criteria.before")
        return self

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ManualActivation(_Model):
    """``POST /triggers/{id}/activations``: an area and a time, as geObservatory's file."""

    #: [min lon, min lat, max lon, max lat], or a point with ``lon``/``lat``.
    bbox: BBox | None = None
    lon: float | None = Field(default=None, ge=-180, le=180)
    lat: float | None = Field(default=None, ge=-90, le=90)
    time: datetime
    magnitude: float | None = None
    depth_km: float | None = None
    #: Names the event (else one is made from the area and time); activations dedupe on it.
    event_id: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _area(self) -> ManualActivation:
        if self.bbox is None and (self.lon is None or self.lat is None):
            raise ValueError("give an area: bbox, or lon and lat")
        if self.time.tzinfo is None:
            raise ValueError("time must carry a time zone (e.g. 2026-12-07T10:00:00Z)")
        return self


@dataclass(frozen=True)
class FeedState:
    """Where a trigger's feed stands (conditional-request validators, schedule, problem)."""

    etag: str | None = None
    last_modified: str | None = None
    next_poll_at: datetime | None = None
    last_polled: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class Trigger:
    """One stored trigger, as read."""

    id: str
    owner: Owner
    rule: TriggerRule
    created: datetime
    updated: datetime
    feed: FeedState

    @property
    def enabled(self) -> bool:
        return self.rule.enabled


@dataclass(frozen=True)
class Activation:
    """One event a trigger fired on (``submitted``), was refused for, or is firing on."""

    id: str
    trigger_id: str
    event_id: str
    kind: str
    event: dict[str, Any]
    outcome: str
    job_id: str
    reason: str | None
    created: datetime
    updated: datetime

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "eventId": self.event_id,
            "kind": self.kind,
            "event": self.event,
            "outcome": self.outcome,
            "jobID": self.job_id if self.outcome == "submitted" else None,
            "reason": self.reason,
            "created": self.created.isoformat(),
        }
