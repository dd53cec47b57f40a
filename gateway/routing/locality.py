"""Data locality: which inputs by reference a site holds (pure, no I/O).

An input ``{"href": url}`` is local to a site whose ``data`` settings
(:class:`~gateway.settings.DataSources`) name the URL's host, a prefix of the
URL, or the STAC collection in its path (``.../collections/<id>/items/...``,
``.../collections/<id>``, the shapes STAC API and static catalogs use).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from gateway.settings import DataSources

_COLLECTION = re.compile(r"/collections/([^/?#]+)")


def references(inputs: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(input name, href) of every input given by reference."""
    for name, value in inputs.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and isinstance(item.get("href"), str):
                yield name, item["href"]


def match(href: str, data: DataSources) -> str | None:
    """How ``href`` is local to a site with ``data`` (``host h``...), or None."""
    try:
        host = (urlsplit(href).hostname or "").lower()
    except ValueError:
        return None
    if host and host in data.hosts:
        return f"host {host}"
    for prefix in data.url_prefixes:
        if href.startswith(prefix):
            return f"mirror {prefix}"
    collection = _COLLECTION.search(href)
    if collection and collection.group(1) in data.stac_collections:
        return f"collection {collection.group(1)}"
    return None


def local_inputs(inputs: Mapping[str, Any], data: DataSources) -> tuple[str, ...]:
    """``input 'name' (host h)`` for each reference local to the site."""
    found: list[str] = []
    for name, href in references(inputs):
        how = match(href, data)
        if how is not None:
            found.append(f"input '{name}': {how}")
    return tuple(found)
