"""Areas of triggers: a box around a point, and GeoJSON polygons checked with shapely."""

from __future__ import annotations

from typing import Any

import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry


def around(lon: float, lat: float, half_width: float) -> tuple[float, float, float, float]:
    """A box of ``2 * half_width`` degrees around a point, kept within lon/lat bounds."""
    return (
        max(-180.0, lon - half_width),
        max(-90.0, lat - half_width),
        min(180.0, lon + half_width),
        min(90.0, lat + half_width),
    )


def polygon_shape(geometry: dict[str, Any]) -> BaseGeometry:
    """A GeoJSON Polygon/MultiPolygon as a valid shape; ValueError saying what is wrong."""
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        raise ValueError("polygon must be a GeoJSON Polygon or MultiPolygon")
    try:
        geom = shape(geometry)
    except (KeyError, TypeError, ValueError, IndexError, shapely.errors.GEOSException) as exc:
        raise ValueError(f"polygon is not a valid GeoJSON geometry: {exc}") from None
    if geom.is_empty or not geom.is_valid:
        raise ValueError("polygon is empty or self-intersecting")
    return geom
