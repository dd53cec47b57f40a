"""Triggers without a database: FDSN GeoJSON parsing (USGS and EMSC layouts), criteria,
the input template, and the nearline answers of staging (202 / 503 + Retry-After)."""

from __future__ import annotations

import email.utils
import json
import time
from datetime import UTC, datetime

import pytest

from gateway.staging.base import not_online, retry_after_seconds
from gateway.triggers.events import Event, FeedError, matches, parse_fdsn_geojson
from gateway.triggers.records import Criteria, ManualActivation, TriggerRule
from gateway.triggers.template import TemplateError, render
from gateway.workflow.errors import InputNotOnline
from tests.trigger_fixtures import Quake, fdsn_geojson

pytestmark = pytest.mark.unit

WHEN = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize("iso_times", [False, True], ids=["usgs", "emsc"])
def test_both_fdsn_geojson_layouts_read_the_same(iso_times: bool) -> None:
    quakes = [Quake("q1", lon=20.5, lat=38.2, depth_km=12.0, mag=6.1, time=WHEN, region="GREECE")]
    body = json.dumps(fdsn_geojson(quakes, iso_times=iso_times)).encode()
    [event], bad = parse_fdsn_geojson(body, half_width=0.5)
    assert bad == 0
    assert event.id == "q1"
    assert event.time == WHEN
    assert (event.lon, event.lat, event.depth_km, event.magnitude) == (20.5, 38.2, 12.0, 6.1)
    assert event.bbox == (20.0, 37.7, 21.0, 38.7)
    assert event.region == "GREECE"


def test_unreadable_features_are_skipped_and_counted() -> None:
    doc = fdsn_geojson([Quake("ok", lon=1, lat=2, depth_km=3, mag=5)])
    doc["features"] += [
        {"type": "Feature", "id": "no-geometry", "properties": {"mag": 5, "time": 0}},
        {"type": "Feature", "id": "bad-lat", "properties": {"mag": 5, "time": 0},
         "geometry": {"type": "Point", "coordinates": [0, 95, 10]}},
        {"type": "Feature", "properties": {"mag": 5, "time": 0},
         "geometry": {"type": "Point", "coordinates": [0, 0, 10]}},
    ]  # fmt: skip
    events, bad = parse_fdsn_geojson(json.dumps(doc).encode(), 0.5)
    assert [e.id for e in events] == ["ok"]
    assert bad == 3


@pytest.mark.parametrize(
    "body", [b"<html/>", b'{"type": "Feature"}', b'{"type": "FeatureCollection"}', b"\xff"]
)
def test_a_body_that_is_not_a_feature_collection_is_a_feed_error(body: bytes) -> None:
    with pytest.raises(FeedError):
        parse_fdsn_geojson(body, 0.5)


def _quake(**kw: float) -> Event:
    values = {"lon": 20.0, "lat": 38.0, "depth_km": 10.0, "magnitude": 6.0}
    values.update(kw)
    lon, lat = values["lon"], values["lat"]
    return Event(
        id="e", time=WHEN, bbox=(lon - 0.5, lat - 0.5, lon + 0.5, lat + 0.5), lon=lon, lat=lat,
        depth_km=values["depth_km"], magnitude=values["magnitude"],
    )  # fmt: skip


AEGEAN = {"type": "Polygon", "coordinates": [[[19, 34], [30, 34], [30, 42], [19, 42], [19, 34]]]}


@pytest.mark.parametrize(
    ("event", "why"),
    [
        (_quake(), None),
        (_quake(magnitude=5.4), "magnitude"),
        (_quake(depth_km=31), "deeper"),
        (_quake(lon=40.0), "polygon"),
        (_quake(lon=-40.0, lat=60.0), "bbox"),
    ],
)
def test_criteria(event: Event, why: str | None) -> None:
    criteria = Criteria(min_magnitude=5.5, max_depth_km=30, bbox=[-30, 25, 50, 72], polygon=AEGEAN)
    reason = matches(event, criteria)
    assert (reason is None) if why is None else (why in (reason or ""))


def test_time_criteria() -> None:
    assert matches(_quake(), Criteria(after=datetime(2026, 12, 8, tzinfo=UTC))) is not None
    assert matches(_quake(), Criteria(before=datetime(2026, 12, 8, tzinfo=UTC))) is None


def test_the_template_fills_typed_values_and_text() -> None:
    template = {
        "area": {"bbox": "{{event.bbox}}"},
        "label": "M{{ event.magnitude }} on {{event.date}}",
        "depth": "{{event.depthKm}}",
        "list": ["{{event.lon}}", 3],
    }
    assert render(template, _quake()) == {
        "area": {"bbox": [19.5, 37.5, 20.5, 38.5]},
        "label": "M6.0 on 2026-12-07",
        "depth": 10.0,
        "list": [20.0, 3],
    }
    with pytest.raises(TemplateError, match="unknown placeholder"):
        render({"x": "{{event.colour}}"}, _quake())
    with pytest.raises(TemplateError, match="has no magnitude"):
        render({"x": "{{event.magnitude}}"}, _quake(magnitude=None))  # type: ignore[arg-type]


def test_rules_and_activations_are_validated() -> None:
    base = {"title": "t", "process": "echo", "inputs": {}, "source": {"type": "manual"}}
    assert TriggerRule.model_validate(base).source.type == "manual"
    for wrong in (
        {**base, "source": {"type": "fdsn-event", "url": "file:///etc/passwd"}},
        {**base, "source": {"type": "rss"}},
        {**base, "criteria": {"after": "2026-12-08T00:00:00Z", "before": "2026-12-07T00:00:00Z"}},
        {**base, "areaHalfWidthDegrees": 0},
    ):
        with pytest.raises(ValueError):
            TriggerRule.model_validate(wrong)
    with pytest.raises(ValueError, match="area"):
        ManualActivation.model_validate({"time": "2026-12-07T00:00:00Z"})
    with pytest.raises(ValueError, match="time zone"):
        ManualActivation.model_validate({"lon": 1, "lat": 2, "time": "2026-12-07T00:00:00"})


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_seconds("120") == 120.0
    later = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 50 < (retry_after_seconds(later) or 0) <= 60
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_nearline_answers() -> None:
    accepted = not_online("http://x/scene", 202, "30")
    assert isinstance(accepted, InputNotOnline) and accepted.retry_after == 30.0
    assert isinstance(not_online("http://x/scene", 503, "5"), InputNotOnline)
    assert not_online("http://x/scene", 503, None) is None  # plain overload: retried in process
    assert not_online("http://x/scene", 200, "5") is None
