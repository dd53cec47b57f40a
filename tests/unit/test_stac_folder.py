"""A STAC Item or Catalog planned as the folder a CWL ``Directory`` input receives."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.staging.base import StagingError
from gateway.staging.reference import Reference
from gateway.staging.stac_folder import plan_folder

pytestmark = pytest.mark.unit

BASE = "https://data.example/stac/"


def _item(item_id: str, **assets: str) -> dict[str, Any]:
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "geometry": None,
        "properties": {"datetime": "2026-01-01T00:00:00Z"},
        "links": [{"rel": "self", "href": "https://elsewhere/x.json"}],
        "assets": {k: {"href": h, "roles": ["data"]} for k, h in assets.items()},
    }


def _raw(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def test_a_catalog_becomes_a_self_contained_folder() -> None:
    served = {
        BASE + "a.json": _raw(_item("S2A_1", B04="b04.tif", thumb="https://cdn.example/t.png")),
        BASE + "sub/b.json": _raw(_item("../evil", B04="b.tif")),
    }
    catalog = {
        "type": "Catalog",
        "id": "c",
        "description": "two scenes",
        "links": [
            {"rel": "item", "href": "a.json"},
            {"rel": "item", "href": "sub/b.json"},
            {"rel": "child", "href": "more/catalog.json"},
        ],
    }
    plan = plan_folder(
        _raw(catalog), BASE + "catalog.json", Reference(BASE, "https"), served.__getitem__
    )
    assert plan.item_ids == ["S2A_1", "../evil"]
    assert sorted(plan.documents) == ["S2A_1/S2A_1.json", "catalog.json", "item-1/item-1.json"]
    assert {(a.href, a.rel) for a in plan.assets} == {
        (BASE + "b04.tif", "S2A_1/B04.tif"),
        ("https://cdn.example/t.png", "S2A_1/thumb.png"),
        (BASE + "sub/b.tif", "item-1/B04.tif"),
    }
    item = json.loads(plan.documents["S2A_1/S2A_1.json"])
    assert item["assets"]["B04"]["href"] == "./B04.tif"
    assert {link["rel"] for link in item["links"]} == {"root", "parent", "via"}
    links = json.loads(plan.documents["catalog.json"])["links"]
    assert [x["href"] for x in links if x["rel"] == "item"] == [
        "./S2A_1/S2A_1.json",
        "./item-1/item-1.json",
    ]


def test_an_item_with_an_asset_named_stages_that_asset_only() -> None:
    raw = _raw(_item("s", B04="b04.tif", B08="b08.tif"))
    plan = plan_folder(raw, BASE + "s.json", Reference(BASE, "https", asset="B08"), {}.__getitem__)
    assert [a.rel for a in plan.assets] == ["s/B08.tif"]


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        (_item("s", B04="file:///etc/passwd"), "scheme 'file'"),
        ({"type": "Catalog", "id": "c", "description": "", "links": []}, "links no Item"),
        ({"type": "Catalog", "id": "c", "links": [{"rel": "item", "href": "/etc/x"}]}, "scheme"),
        ({"type": "FeatureCollection"}, "not a STAC Item or Catalog"),
    ],
)
def test_refusals(doc: dict[str, Any], needle: str) -> None:
    href = "file:///x.json" if needle == "scheme" else BASE + "x.json"
    with pytest.raises(StagingError, match=needle):
        plan_folder(_raw(doc), href, Reference(href, "https"), {}.__getitem__)
