"""Raster helpers the EO runners share: staged inputs, tile mosaics as COG, quicklooks.

Runs on the cluster inside a job. Reading and writing go through rasterio,
Cloud-Optimised GeoTIFFs through rio-cogeo, the quicklook through Pillow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from PIL import Image, ImageDraw
from rasterio.errors import RasterioIOError
from rasterio.io import MemoryFile
from rasterio.merge import merge
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles

from processes.runtime import OUTPUTS_DIR, write_outputs
from processes.tiling import InvalidInput
from processes.zarr_output import ZARR, cog_to_zarr, output_format

GEOTIFF = "image/tiff; application=geotiff; profile=cloud-optimized"
QUICKLOOK_FILE = "quicklook.png"
NODATA = -9999.0
QUICKLOOK_MAX = 1024
#: Viridis-like ramp (dark blue -> green -> yellow) for the quicklooks.
_RAMP = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]])


def staged_path(inputs: dict[str, Any], name: str, workspace: Path) -> Path:
    """The workspace path of the staged input ``name`` (given by reference)."""
    ref = inputs.get(name)
    if ref is None:
        raise InvalidInput(f"the input {name!r} is required")
    if not isinstance(ref, dict) or not isinstance(ref.get("path"), str):
        raise InvalidInput(f"the input {name!r} must be a GeoTIFF given by reference (href)")
    root = workspace.resolve()
    path = (root / ref["path"]).resolve()
    if not path.is_relative_to(root):
        raise InvalidInput(f"staged path {ref['path']!r} of {name!r} is outside the workspace")
    return path


def open_raster(path: Path, what: str) -> rasterio.io.DatasetReader:
    """Open a staged raster; InvalidInput (not a traceback) for a file GDAL cannot read."""
    try:
        return rasterio.open(path)
    except RasterioIOError as exc:
        raise InvalidInput(f"cannot read the {what} image as a raster: {exc}") from exc


def check_pair(ref: rasterio.io.DatasetReader, sec: rasterio.io.DatasetReader, band: int) -> None:
    """Same size, CRS and transform, and ``band`` exists in both; InvalidInput otherwise."""
    if (ref.width, ref.height) != (sec.width, sec.height):
        raise InvalidInput(
            f"the images differ in size: {ref.width}x{ref.height} vs {sec.width}x{sec.height}"
        )
    if ref.crs != sec.crs or not ref.transform.almost_equals(sec.transform):
        raise InvalidInput("the images are not on the same grid (CRS or transform differ)")
    if band > min(ref.count, sec.count):
        raise InvalidInput(
            f"band={band} is out of range: the images have {min(ref.count, sec.count)} band(s)"
        )


def integer(inputs: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    """An integer input within ``[low, high]``; InvalidInput otherwise."""
    value = inputs.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return value


def write_tile(path: Path, bands: np.ndarray, profile: dict[str, Any], names: list[str]) -> None:
    """One tile (bands, rows, cols float32) as a plain GeoTIFF for the merge."""
    count, height, width = bands.shape
    tile_profile = {
        **profile,
        "driver": "GTiff",
        "count": count,
        "height": height,
        "width": width,
        "dtype": "float32",
        "nodata": NODATA,
    }
    with rasterio.open(path, "w", **tile_profile) as dst:
        dst.write(bands.astype(np.float32))
        for index, name in enumerate(names, start=1):
            dst.set_band_description(index, name)


def mosaic_to_cog(tiles: list[Path], destination: Path, names: list[str]) -> None:
    """Mosaic the tiles (rasterio.merge) and write the result as a COG (rio-cogeo)."""
    with rasterio.open(tiles[0]) as first:
        profile = first.profile
    data, transform = merge([str(t) for t in tiles], nodata=NODATA)
    profile.update(driver="GTiff", height=data.shape[1], width=data.shape[2], transform=transform)
    with MemoryFile() as memfile:
        with memfile.open(**profile) as mem:
            mem.write(data)
            for index, name in enumerate(names, start=1):
                mem.set_band_description(index, name)
        with memfile.open() as mosaic:
            cog_translate(
                mosaic,
                str(destination),
                cog_profiles.get("deflate"),
                in_memory=True,
                quiet=True,
                web_optimized=False,
            )


def quicklook(values: np.ndarray, destination: Path, low: float, high: float, label: str) -> None:
    """A colour-mapped PNG of ``values`` (NaN transparent) with a colour bar and its scale."""
    span = (high - low) or 1.0
    scaled = np.clip((np.nan_to_num(values, nan=low) - low) / span, 0.0, 1.0)
    stops = np.linspace(0.0, 1.0, len(_RAMP))
    rgba = np.zeros((*values.shape, 4), dtype=np.uint8)
    for channel in range(3):
        rgba[..., channel] = np.rint(np.interp(scaled, stops, _RAMP[:, channel]))
    rgba[..., 3] = np.where(np.isnan(values), 0, 255)
    image = Image.fromarray(rgba, "RGBA")
    scale = QUICKLOOK_MAX / max(image.size)
    if scale < 1 or max(image.size) < 256:
        factor = scale if scale < 1 else 256 / max(image.size)
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        image = image.resize(size, Image.Resampling.NEAREST)
    bar_h = 28
    canvas = Image.new("RGBA", (image.width, image.height + bar_h), (255, 255, 255, 255))
    canvas.paste(image, (0, 0))
    ramp = np.linspace(0.0, 1.0, image.width)
    bar = np.stack([np.interp(ramp, stops, _RAMP[:, c]) for c in range(3)], axis=-1)
    bar_img = Image.fromarray(np.rint(np.tile(bar, (10, 1, 1))).astype(np.uint8), "RGB")
    canvas.paste(bar_img, (0, image.height + 2))
    draw = ImageDraw.Draw(canvas)
    draw.text((2, image.height + 13), f"{low:.3g}", fill=(0, 0, 0, 255))
    draw.text((image.width // 3, image.height + 13), label, fill=(0, 0, 0, 255))
    right = f"{high:.3g}"
    draw.text((image.width - 7 * len(right) - 2, image.height + 13), right, fill=(0, 0, 0, 255))
    canvas.save(destination, format="PNG", optimize=True)


def write_product(
    root: Path, output: str, filename: str, stats: dict[str, Any], inputs: dict[str, Any]
) -> None:
    """``outputs.json`` of an EO product: its COG ``output`` (or, with ``format: zarr``,
    the COG rewritten as a Zarr store), the quicklook, the statistics."""
    product = {"path": f"{OUTPUTS_DIR}/{filename}", "type": GEOTIFF}
    if output_format(inputs) == "zarr":
        cog = root / OUTPUTS_DIR / filename
        store = Path(filename).with_suffix(".zarr").name
        cog_to_zarr(cog, root / OUTPUTS_DIR / store)
        cog.unlink()
        product = {"path": f"{OUTPUTS_DIR}/{store}", "type": ZARR}
    write_outputs(
        {
            output: product,
            "quicklook": {"path": f"{OUTPUTS_DIR}/{QUICKLOOK_FILE}", "type": "image/png"},
            "statistics": {"value": stats},
        },
        root,
    )
