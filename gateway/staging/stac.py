"""Pick the asset of a STAC Item that an input names (by key, or by role).

Convention (see ``docs/workflow.md``)::

    {"href": "https://.../item.json", "asset": "B04"}     # the asset with key B04
    {"href": "https://.../item.json", "role": "visual"}   # the one asset with role visual
    {"href": "https://.../item.json", "type": "application/geo+json"}   # role "data"

A role must match exactly one asset; when several match, the error lists
their keys so the user can name one. Asset hrefs are resolved against the
Item's own URL and must be http(s) or s3 URLs: an Item fetched from the
network can never point the gateway at a local file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pystac

from gateway.staging.base import StagingError
from gateway.staging.reference import REMOTE_SCHEMES, Reference


@dataclass(frozen=True)
class SelectedAsset:
    """The asset a STAC reference resolved to."""

    item_id: str
    key: str
    href: str
    media_type: str | None
    roles: tuple[str, ...]


def parse_item(raw: bytes, item_href: str) -> pystac.Item:
    """A STAC Item from its JSON document; StagingError when it is not one."""
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise StagingError(f"{item_href}: not a JSON document ({exc})") from None
    if not isinstance(doc, dict) or doc.get("type") != "Feature":
        raise StagingError(f"{item_href}: not a STAC Item (expected a GeoJSON Feature)")
    try:
        return pystac.Item.from_dict(doc, href=item_href, preserve_dict=False)
    except (pystac.STACTypeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StagingError(f"{item_href}: not a valid STAC Item ({exc})") from None


def select_asset(item: pystac.Item, ref: Reference) -> SelectedAsset:
    """The asset ``ref`` names in ``item``; StagingError when there is not exactly one
    or its href is not a remote (http(s), s3) URL."""
    selected = find_asset(item, ref)
    check_asset_scheme(selected)
    return selected


def find_asset(item: pystac.Item, ref: Reference) -> SelectedAsset:
    """The asset ``ref`` names in ``item``, href made absolute but not checked."""
    assets = item.get_assets()
    if ref.asset is not None:
        if ref.asset not in assets:
            known = ", ".join(sorted(assets)) or "none"
            raise StagingError(
                f"STAC Item '{item.id}' has no asset '{ref.asset}' (assets: {known})"
            )
        key = ref.asset
    else:
        matches = sorted(k for k, a in assets.items() if ref.role in (a.roles or []))
        if not matches:
            raise StagingError(f"STAC Item '{item.id}' has no asset with role '{ref.role}'")
        if len(matches) > 1:
            raise StagingError(
                f"role '{ref.role}' matches several assets of STAC Item '{item.id}' "
                f'({", ".join(matches)}); name one with "asset"'
            )
        key = matches[0]
    asset = assets[key]
    href = asset.get_absolute_href() or asset.href
    return SelectedAsset(item.id, key, href, asset.media_type, tuple(asset.roles or ()))


def check_asset_scheme(selected: SelectedAsset) -> None:
    """StagingError unless the asset's href is an http(s) or s3 URL."""
    scheme = urlsplit(selected.href).scheme.lower()
    if scheme not in REMOTE_SCHEMES:
        raise StagingError(
            f"asset '{selected.key}' of STAC Item '{selected.item_id}' has an href with scheme "
            f"'{scheme or '(none)'}'; only {', '.join(REMOTE_SCHEMES)} are fetched"
        )


def describe(selected: SelectedAsset, item_href: str) -> dict[str, Any]:
    """The provenance recorded with the staged input."""
    return {
        "item": item_href,
        "item_id": selected.item_id,
        "asset": selected.key,
        "href": selected.href,
        "type": selected.media_type,
        "roles": list(selected.roles),
    }
