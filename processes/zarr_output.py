"""The optional Zarr output of the EO products (process input ``format: zarr``).

The merge always builds the product as a COG (the quicklook and statistics
read it); with ``format: zarr`` the COG is then rewritten as a consolidated
Zarr store (xarray + zarr, Zarr format 2 so GDAL's Zarr driver and older
readers open it too) and the COG removed. The store holds one ``(y, x)``
variable per band, named after the band, with nodata as ``_FillValue``;
``x``/``y`` are the pixel-centre coordinates in the CRS; the CRS is a CF
grid mapping variable ``spatial_ref`` (``crs_wkt``, GDAL ``GeoTransform``),
which rioxarray and GDAL read, plus ``proj:code`` in the store's attributes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from processes.tiling import InvalidInput

ZARR = "application/vnd+zarr"
FORMATS = ("cog", "zarr")
CHUNK = 512


def output_format(inputs: dict[str, Any]) -> str:
    """The ``format`` input: ``cog`` (default) or ``zarr``; InvalidInput otherwise."""
    value = inputs.get("format", "cog")
    if value not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}, got {value!r}")
    return str(value)


def cog_to_zarr(cog: Path, store: Path) -> None:
    """Rewrite the GeoTIFF ``cog`` as the consolidated Zarr store ``store`` (replaced)."""
    import xarray as xr  # only a Zarr run pays for importing xarray and zarr

    with rasterio.open(cog) as ds:
        data = ds.read()
        names = [d or f"band_{i}" for i, d in enumerate(ds.descriptions, start=1)]
        t = ds.transform
        xs = t.c + t.a * (np.arange(ds.width) + 0.5)
        ys = t.f + t.e * (np.arange(ds.height) + 0.5)
        wkt = ds.crs.to_wkt() if ds.crs else ""
        epsg = ds.crs.to_epsg() if ds.crs else None
        nodata = ds.nodata
    grid = {"grid_mapping": "spatial_ref"}
    dataset = xr.Dataset(
        {name: (("y", "x"), data[i], grid) for i, name in enumerate(names)},
        coords={
            "x": ("x", xs, {"standard_name": "projection_x_coordinate"}),
            "y": ("y", ys, {"standard_name": "projection_y_coordinate"}),
            "spatial_ref": (
                (),
                0,
                {
                    "crs_wkt": wkt,
                    "spatial_ref": wkt,
                    "GeoTransform": " ".join(str(v) for v in (t.c, t.a, t.b, t.f, t.d, t.e)),
                },
            ),
        },
        attrs={"proj:code": f"EPSG:{epsg}" if epsg else None, "source": cog.name},
    )
    chunks = (min(CHUNK, data.shape[1]), min(CHUNK, data.shape[2]))
    encoding = {name: {"chunks": chunks, "_FillValue": nodata} for name in names}
    shutil.rmtree(store, ignore_errors=True)
    dataset.to_zarr(store, mode="w", consolidated=True, zarr_format=2, encoding=encoding)
