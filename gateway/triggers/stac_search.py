"""The ``stac-search`` source: new items of STAC collections over an area, as events.

One ``POST`` of a STAC API *item search* (``{url}`` is the API's ``/search``
endpoint) per poll: the rule's ``collections``, ``criteria.bbox`` (else the
polygon's bounds) and a datetime range from ``criteria.after``; up to 100
items, newest first where the API sorts. Each item is an event: its id
(``<collection>/<item id>``), its datetime, its footprint box, its own link
(``{{event.href}}``) and, when the rule names one, an asset's href
(``{{event.assetHref}}``). An item already fired on is skipped by the
activation dedupe, so "new items" need no cursor of our own.

A static catalog (no ``/search``) is not a source: a STAC API's search is
what providers offer for "what is new over this area"; the tests run a
small search endpoint of their own.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pystac

from gateway.triggers.events import Event, FeedError, read_limited
from gateway.triggers.geometry import polygon_shape
from gateway.triggers.records import StacSearchSource, TriggerRule

#: Items read per search.
SEARCH_LIMIT = 100


def search_body(source: StacSearchSource, rule: TriggerRule) -> dict[str, Any]:
    """The item-search request of ``rule``."""
    body: dict[str, Any] = {"collections": source.collections, "limit": SEARCH_LIMIT}
    c = rule.criteria
    if c.bbox is not None:
        body["bbox"] = c.bbox
    elif c.polygon is not None:
        body["bbox"] = list(polygon_shape(c.polygon).bounds)
    if c.after is not None or c.before is not None:
        start = c.after.isoformat() if c.after else ".."
        end = c.before.isoformat() if c.before else ".."
        body["datetime"] = f"{start}/{end}"
    return body


def search_events(
    client: httpx.Client, source: StacSearchSource, rule: TriggerRule, max_bytes: int
) -> tuple[list[Event], str | None]:
    """The items the search returns, as events, and a note on unreadable ones."""
    headers = {"Accept": "application/geo+json, application/json"}
    with client.stream("POST", source.url, json=search_body(source, rule), headers=headers) as resp:
        if resp.status_code != 200:
            raise FeedError(f"the STAC search answered HTTP {resp.status_code}")
        body = read_limited(resp, max_bytes)
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FeedError(f"the STAC search answer is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("features"), list):
        raise FeedError("the STAC search answer is not an ItemCollection")
    events: list[Event] = []
    bad = 0
    for raw in doc["features"]:
        try:
            events.append(item_event(pystac.Item.from_dict(raw), source.asset))
        except (KeyError, TypeError, ValueError, pystac.STACError):
            bad += 1
    return events, (f"{bad} item(s) of the last answer could not be read" if bad else None)


def item_event(item: pystac.Item, asset: str | None) -> Event:
    """One STAC Item as an event (ValueError when it lacks a time, footprint or the asset)."""
    when = item.datetime or item.common_metadata.start_datetime
    if when is None or item.bbox is None or len(item.bbox) < 4:
        raise ValueError(f"item {item.id} has no datetime or bbox")
    minx, miny, maxx, maxy = (
        float(v) for v in (item.bbox[0], item.bbox[1], item.bbox[-2], item.bbox[-1])
    )
    asset_href = None
    if asset is not None:
        if asset not in item.assets:
            raise ValueError(f"item {item.id} has no asset '{asset}'")
        asset_href = item.assets[asset].get_absolute_href() or item.assets[asset].href
    self_link = item.get_single_link("self")
    return Event(
        id=f"{item.collection_id or '-'}/{item.id}"[:200],
        time=when,
        bbox=(minx, miny, maxx, maxy),
        lon=(minx + maxx) / 2,
        lat=(miny + maxy) / 2,
        href=self_link.href if self_link is not None else None,
        asset_href=asset_href,
    )
