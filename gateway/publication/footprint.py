"""Facts about published files, recorded with the job for its STAC Item.

For each published output file: its size, sha256 and media type; for raster
outputs (GeoTIFF) also the footprint in WGS 84, so the job's STAC Item has a
geometry and bbox, and the grid and bands (:mod:`~gateway.publication.raster_facts`)
for its projection and raster extensions. Files are read in chunks (memory stays bounded).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rasterio
from rasterio.errors import CRSError, RasterioError
from rasterio.warp import transform_bounds

from gateway.publication.raster_facts import raster_facts
from gateway.publication.stac_items import result_links

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def raster_bbox(path: Path) -> list[float] | None:
    """``[west, south, east, north]`` in EPSG:4326 of a georeferenced raster, else None."""
    try:
        with rasterio.open(path) as ds:
            if ds.crs is None:
                return None
            bounds = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21)
    except (RasterioError, CRSError, ValueError) as exc:
        log.debug("%s: no footprint: %s", path, exc)
        return None
    return [round(float(v), 9) for v in bounds]


def _union(boxes: list[list[float]]) -> list[float]:
    return [
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    ]


def publication_record(folder: Path, results: dict[str, Any]) -> dict[str, Any]:
    """``{"published", "files": {output: {file, type, size, sha256, raster?}}, "bbox"?}``."""
    files: dict[str, Any] = {}
    boxes: list[list[float]] = []
    for name, value in result_links(results):
        filename = value["href"].rsplit("/", 1)[-1]
        path = folder / filename
        if path.is_dir() and not path.is_symlink():  # a directory output (Zarr store)
            inside = [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()]
            size = sum(p.stat().st_size for p in inside)
            files[name] = {"file": filename, "type": value.get("type"), "size": size}
            continue
        if not path.is_file():
            continue
        media = str(value.get("type") or "")
        files[name] = {
            "file": filename,
            "type": media or None,
            "size": path.stat().st_size,
            "sha256": _sha256(path),
        }
        if media.startswith("image/tiff"):
            bbox = raster_bbox(path)
            if bbox:
                boxes.append(bbox)
            facts = raster_facts(path)
            if facts:
                files[name]["raster"] = facts
    record: dict[str, Any] = {"published": _now(), "files": files}
    if boxes:
        record["bbox"] = _union(boxes)
    return record


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
