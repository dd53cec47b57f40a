"""What a published raster says about itself, for the STAC projection and raster extensions.

Read once at publication (worker side; rasterio) and kept in the job's
publication record, so the STAC Item is built from the job record alone:
the grid (``code`` like ``EPSG:32632`` or ``wkt2``, ``shape`` [rows, cols],
``transform`` the six affine coefficients) and per band its data type,
nodata and statistics. Statistics are computed on a decimated read (at most
:data:`STATS_SIDE` pixels a side: the COG's overviews when it has them), so
they are cheap and approximate for large rasters.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import CRSError, RasterioError

log = logging.getLogger(__name__)

STATS_SIDE = 1024


def _nodata(value: float | None) -> float | str | None:
    """The raster extension's nodata: a number, or "nan"/"inf"/"-inf"."""
    if value is None:
        return None
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _statistics(values: np.ma.MaskedArray) -> dict[str, float] | None:
    """Minimum, maximum, mean, standard deviation and valid percentage of the unmasked cells."""
    if np.iscomplexobj(values):
        return None
    total = values.size
    valid = values.compressed()
    valid = valid[np.isfinite(valid)]
    if total == 0 or valid.size == 0:
        return None
    return {
        "minimum": float(valid.min()),
        "maximum": float(valid.max()),
        "mean": float(valid.mean()),
        "stddev": float(valid.std()),
        "valid_percent": round(100.0 * valid.size / total, 3),
    }


def raster_facts(path: Path) -> dict[str, Any] | None:
    """``{"code"|"wkt2", "shape", "transform", "bands": [...]}`` of a raster, else None."""
    try:
        with rasterio.open(path) as ds:
            scale = max(1, math.ceil(max(ds.height, ds.width) / STATS_SIDE))
            shape = (max(1, ds.height // scale), max(1, ds.width // scale))
            facts: dict[str, Any] = {
                "shape": [ds.height, ds.width],
                "transform": [float(v) for v in list(ds.transform)[:6]],
            }
            if ds.crs is not None:
                epsg = ds.crs.to_epsg()
                if epsg is not None:
                    facts["code"] = f"EPSG:{epsg}"
                else:
                    facts["wkt2"] = ds.crs.to_wkt()
            bands = []
            for index, dtype in enumerate(ds.dtypes, start=1):
                band: dict[str, Any] = {"data_type": dtype}
                nodata = _nodata(ds.nodatavals[index - 1])
                if nodata is not None:
                    band["nodata"] = nodata
                stats = _statistics(ds.read(index, out_shape=shape, masked=True))
                if stats is not None:
                    band["statistics"] = stats
                bands.append(band)
            facts["bands"] = bands
            return facts
    except (RasterioError, CRSError, ValueError) as exc:
        log.debug("%s: no raster facts: %s", path, exc)
        return None
