"""A CWL ``Directory`` input given a STAC Item or Catalog: planned as a STAC catalog folder.

The EO Application Package convention (OGC 20-089) hands a tool its EO
products as a folder holding a self-contained STAC catalog::

    inputs/<input>/catalog.json                  links every Item (rel "item")
    inputs/<input>/<item id>/<item id>.json      the Item, asset hrefs relative
    inputs/<input>/<item id>/<asset key><ext>    each asset, downloaded

The href names a STAC Item (a GeoJSON ``Feature``) or a Catalog/Collection,
whose ``item`` links are followed (one level, at most :data:`MAX_ITEMS`;
``child`` catalogs are not). Every asset of every Item is staged, or only the
one an ``asset``/``role`` of the input names. Documents are fetched by the
stager (through the egress guard, size-limited); every Item and asset href is
resolved against its document's URL and must be a remote (http(s), s3) URL,
so a document from the network can never point the gateway at a local file.
Folder and file names come from Item ids and asset keys only when they are
plain names (else ``item-<n>`` / ``asset-<n>``).

This module plans the folder (pure, but for ``fetch``); :class:`~gateway.staging.stager.Stager`
writes it.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from gateway.staging.base import StagingError
from gateway.staging.reference import REMOTE_SCHEMES, Reference
from gateway.staging.stac import find_asset, parse_item

#: Items of one catalog staged at most.
MAX_ITEMS = 100
CATALOG_FILE = "catalog.json"
STAC_VERSION = "1.0.0"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_EXT = re.compile(r"^\.[A-Za-z0-9]{1,8}$")

#: Reads one JSON document (an Item or a Catalog) by URL, size-limited.
Fetch = Callable[[str], bytes]


@dataclass(frozen=True)
class FolderAsset:
    """One asset file to download into the folder."""

    href: str
    #: Path inside the folder (``<item>/<asset><ext>``).
    rel: str


@dataclass
class FolderPlan:
    """What the folder holds: the JSON documents to write and the assets to fetch."""

    documents: dict[str, bytes] = field(default_factory=dict)
    assets: list[FolderAsset] = field(default_factory=list)
    item_ids: list[str] = field(default_factory=list)


def _remote(href: str, what: str) -> str:
    scheme = urlsplit(href).scheme.lower()
    if scheme not in REMOTE_SCHEMES:
        raise StagingError(
            f"{what} has an href with scheme '{scheme or '(none)'}'; "
            f"only {', '.join(REMOTE_SCHEMES)} are fetched"
        )
    return href


def _name(candidate: Any, fallback: str, taken: set[str]) -> str:
    name = str(candidate) if isinstance(candidate, str) and _NAME.match(candidate) else fallback
    while name in taken:
        name = f"{name}-{len(taken)}"
    taken.add(name)
    return name


def _json(raw: bytes, href: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise StagingError(f"{href}: not a JSON document ({exc})") from None
    if not isinstance(doc, dict):
        raise StagingError(f"{href}: not a STAC Item or Catalog")
    return doc


def _item_hrefs(catalog: dict[str, Any], href: str) -> list[str]:
    links = [
        link
        for link in catalog.get("links", [])
        if isinstance(link, dict)
        and link.get("rel") == "item"
        and isinstance(link.get("href"), str)
    ]
    if not links:
        raise StagingError(f"{href}: the STAC catalog links no Item (rel 'item')")
    if len(links) > MAX_ITEMS:
        raise StagingError(
            f"{href}: the STAC catalog links {len(links)} Items; at most {MAX_ITEMS}"
        )
    return [_remote(urljoin(href, link["href"]), f"an item link of {href}") for link in links]


def plan_folder(raw: bytes, href: str, ref: Reference, fetch: Fetch) -> FolderPlan:
    """The folder for the STAC Item or Catalog ``raw`` read from ``href``."""
    root = _json(raw, href)
    kind = root.get("type")
    if kind == "Feature":
        items = [(raw, href)]
        title = f"STAC Item {href}"
    elif kind in ("Catalog", "Collection"):
        items = [(fetch(h), h) for h in _item_hrefs(root, href)]
        title = str(root.get("description") or root.get("title") or href)
    else:
        raise StagingError(f"{href}: not a STAC Item or Catalog (type {kind!r})")
    plan = FolderPlan()
    links: list[dict[str, str]] = [{"rel": "root", "href": f"./{CATALOG_FILE}"}]
    folders: set[str] = set()
    for n, (item_raw, item_href) in enumerate(items):
        folder = _item(plan, item_raw, item_href, ref, f"item-{n}", folders)
        links.append({"rel": "item", "href": f"./{folder}/{folder}.json"})
    catalog = {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": "inputs",
        "description": title,
        "links": links,
    }
    plan.documents[CATALOG_FILE] = json.dumps(catalog, indent=1).encode()
    return plan


def _item(
    plan: FolderPlan, raw: bytes, href: str, ref: Reference, fallback: str, folders: set[str]
) -> str:
    """Plan one Item (its document and its assets); its folder name."""
    item = parse_item(raw, href)
    folder = _name(item.id, fallback, folders)
    doc = _json(raw, href)
    chosen = {find_asset(item, ref).key} if ref.is_stac else set(item.assets)
    assets: dict[str, Any] = {}
    files: set[str] = set()
    for n, key in enumerate(sorted(chosen)):
        asset = item.assets[key]
        source = _remote(asset.get_absolute_href() or asset.href, f"asset '{key}' of {href}")
        ext = posixpath.splitext(urlsplit(source).path)[1].lower()
        filename = _name(key, f"asset-{n}", files) + (ext if _EXT.match(ext) else "")
        plan.assets.append(FolderAsset(source, f"{folder}/{filename}"))
        original = doc.get("assets", {}).get(key, {})
        assets[key] = {**original, "href": f"./{filename}"}
    doc["assets"] = assets
    doc["links"] = [
        {"rel": "root", "href": f"../{CATALOG_FILE}"},
        {"rel": "parent", "href": f"../{CATALOG_FILE}"},
        {"rel": "via", "href": href},
    ]
    plan.documents[f"{folder}/{folder}.json"] = json.dumps(doc, indent=1).encode()
    plan.item_ids.append(item.id)
    return folder
