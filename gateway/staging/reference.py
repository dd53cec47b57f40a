"""Inputs given by reference: the conventions, parsed once for admission and staging.

An input value ``{"href": ...}`` is staged according to its URL scheme:

* ``http(s)://...`` -- downloaded through the egress guard;
* ``s3://bucket/key`` -- read from the configured S3 endpoint;
* ``file:///path`` -- copied from a local folder, only under ``staging.local_roots``.

It is a **STAC Item** reference when it names an asset (``"asset": "<key>"``)
or an asset role (``"role": "<role>"``), or declares the STAC Item media type
(``"type": "application/geo+json"``, then role ``data`` is implied). The href
then points to the Item document, and the selected asset's file is staged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from gateway.staging.base import StagingError

STAC_ITEM_TYPE = "application/geo+json"
DEFAULT_ROLE = "data"
REMOTE_SCHEMES = ("http", "https", "s3")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class Reference:
    """One ``{"href": ...}`` input, classified."""

    href: str
    scheme: str
    asset: str | None = None
    role: str | None = None

    @property
    def is_stac(self) -> bool:
        return self.asset is not None or self.role is not None

    @classmethod
    def parse(cls, value: dict[str, Any]) -> Reference:
        href = str(value.get("href", ""))
        scheme = urlsplit(href).scheme.lower()
        asset = value.get("asset")
        role = value.get("role")
        media = str(value.get("type") or "").split(";", 1)[0].strip().lower()
        if asset is None and role is None and media == STAC_ITEM_TYPE:
            role = DEFAULT_ROLE
        return cls(
            href=href,
            scheme=scheme,
            asset=str(asset) if asset is not None else None,
            role=str(role) if role is not None else None,
        )


def is_reference(value: Any) -> bool:
    return isinstance(value, dict) and "href" in value


def iter_references(inputs: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(name, value)`` of every reference input (list inputs flattened, ``name_i``)."""
    found: list[tuple[str, dict[str, Any]]] = []
    for name, value in inputs.items():
        if isinstance(value, list):
            found.extend((f"{name}_{i}", v) for i, v in enumerate(value) if is_reference(v))
        elif is_reference(value):
            found.append((name, value))
    return found


def parse_s3(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); StagingError when malformed."""
    parts = urlsplit(url)
    bucket, key = parts.netloc, unquote(parts.path.lstrip("/"))
    if parts.scheme.lower() != "s3" or not _BUCKET.match(bucket) or not key:
        raise StagingError(f"'{url}' is not an s3://<bucket>/<key> URL")
    if parts.query or parts.fragment:
        raise StagingError(f"'{url}': s3 URLs take no query or fragment")
    return bucket, key


def local_path(url: str, roots: list[str]) -> Path:
    """The file a ``file:///`` URL names, if it is a regular file under an allowed root.

    The path is resolved (symlinks followed) before the check, so a link in an
    allowed folder cannot lead out of it.
    """
    if not roots:
        raise StagingError("file:// inputs are not allowed on this server")
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise StagingError(f"'{url}' must be file:///<absolute path>")
    path = Path(unquote(parts.path)).resolve()
    for root in roots:
        if path.is_relative_to(Path(root).resolve()):
            break
    else:
        raise StagingError(f"'{url}' is outside the folders inputs may be read from")
    if not path.is_file():
        raise StagingError(f"'{url}' is not an existing regular file")
    return path
