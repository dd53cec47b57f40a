"""Runner of the ``ndvi`` process: ``python -m processes.ndvi.run`` in the job workspace.

Reads the staged ``image`` (``{"href": ..., "path": "inputs/<file>"}``) block by
block, writes ``outputs/ndvi.tif`` (float32, the input's CRS and transform,
nodata ``-9999`` where NIR + red is 0 or an input pixel is masked),
``outputs/quicklook.png`` (colour-mapped, at most 1024 pixels on its longer
side, nodata transparent) and the ``statistics`` of the valid pixels.

Exit codes: 0 success; 2 invalid input (bad band number, unreadable image,
missing reference), with a one-line message on stderr; anything else is a bug
and leaves a traceback on stderr.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from PIL import Image
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError

from processes.runtime import OUTPUTS_DIR, output_path, read_inputs, report_progress, write_outputs

NODATA = -9999.0
GEOTIFF = "image/tiff; application=geotiff"
NDVI_FILE = "ndvi.tif"
QUICKLOOK_FILE = "quicklook.png"
QUICKLOOK_MAX = 1024
#: Output tile size; also the processing window, so memory per step is bounded.
TILE = 256
#: GDAL block cache in MB (bounded well below the job's memory request).
GDAL_CACHE_MB = 256
EXIT_INVALID_INPUT = 2

#: NDVI -> RGB colour ramp stops (brown, tan, light yellow, green, dark green).
_RAMP_STOPS = np.array([-1.0, 0.0, 0.2, 0.5, 1.0])
_RAMP_RGB = np.array(
    [[120, 69, 25], [210, 180, 140], [255, 255, 191], [102, 189, 99], [0, 104, 55]],
    dtype=np.float64,
)


class InvalidInput(ValueError):
    """An input the process cannot use; reported on stderr, exit code 2."""


@dataclass
class Statistics:
    """Running statistics of the valid NDVI values."""

    valid: int = 0
    total: int = 0
    sum: float = 0.0
    sumsq: float = 0.0
    min: float = math.inf
    max: float = -math.inf

    def add(self, values: np.ndarray, total: int) -> None:
        self.total += total
        if values.size == 0:
            return
        data = values.astype(np.float64)
        self.valid += int(data.size)
        self.sum += float(data.sum())
        self.sumsq += float(np.square(data).sum())
        self.min = min(self.min, float(data.min()))
        self.max = max(self.max, float(data.max()))

    def as_value(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "valid_pixels": self.valid,
            "nodata_pixels": self.total - self.valid,
            "total_pixels": self.total,
        }
        if self.valid:
            mean = self.sum / self.valid
            result.update(
                min=self.min,
                max=self.max,
                mean=mean,
                stddev=math.sqrt(max(0.0, self.sumsq / self.valid - mean * mean)),
            )
        return result


def _band(inputs: dict[str, Any], name: str, default: int) -> int:
    value = inputs.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"{name} must be a 1-based band number (integer >= 1), got {value!r}")
    return value


def _image_path(inputs: dict[str, Any], workspace: Path) -> Path:
    ref = inputs.get("image")
    if ref is None:
        raise InvalidInput("the input 'image' is required")
    if not isinstance(ref, dict) or not isinstance(ref.get("path"), str):
        raise InvalidInput("the input 'image' must be a GeoTIFF given by reference (href)")
    root = workspace.resolve()
    path = (root / ref["path"]).resolve()
    if not path.is_relative_to(root):
        raise InvalidInput(f"staged image path {ref['path']!r} is outside the workspace")
    return path


def _output_profile(src: rasterio.io.DatasetReader) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": src.width,
        "height": src.height,
        "count": 1,
        "dtype": "float32",
        "crs": src.crs,
        "transform": src.transform,
        "nodata": NODATA,
        "compress": "deflate",
        "predictor": 3,
        "BIGTIFF": "IF_SAFER",
    }
    if src.width >= TILE and src.height >= TILE:
        profile.update(tiled=True, blockxsize=TILE, blockysize=TILE)
    return profile


def _ndvi_block(
    src: rasterio.io.DatasetReader, red_band: int, nir_band: int, window: Any
) -> tuple[np.ndarray, np.ndarray]:
    """NDVI (float32, NODATA where invalid) and the validity mask of one window."""
    red = src.read(red_band, window=window, out_dtype="float64")
    nir = src.read(nir_band, window=window, out_dtype="float64")
    valid = (src.read_masks(red_band, window=window) > 0) & (
        src.read_masks(nir_band, window=window) > 0
    )
    total = red + nir
    valid &= np.isfinite(total) & (total != 0)
    ndvi = np.full(red.shape, NODATA, dtype=np.float64)
    np.divide(nir - red, total, out=ndvi, where=valid)
    ndvi32 = ndvi.astype(np.float32)
    valid &= np.isfinite(ndvi32)
    ndvi32[~valid] = NODATA
    return ndvi32, valid


def compute_ndvi(
    image: Path,
    destination: Path,
    red_band: int,
    nir_band: int,
    progress: Callable[[int, str], None] = lambda percent, message: None,
) -> Statistics:
    """Write the NDVI GeoTIFF of ``image`` to ``destination``; InvalidInput on bad input.

    ``progress(percent, message)`` is called about 50 times, percent 5..85."""
    try:
        src = rasterio.open(image)
    except RasterioIOError as exc:
        raise InvalidInput(f"cannot read the image as a raster: {exc}") from exc
    stats = Statistics()
    with src:
        for name, band in (("red_band", red_band), ("nir_band", nir_band)):
            if band > src.count:
                raise InvalidInput(
                    f"{name}={band} is out of range: the image has {src.count} band(s)"
                )
        if red_band == nir_band:
            raise InvalidInput(f"red_band and nir_band must differ (both are {red_band})")
        with rasterio.open(destination, "w", **_output_profile(src)) as dst:
            dst.set_band_description(1, "NDVI")
            windows = [window for _, window in dst.block_windows(1)]
            every = max(1, len(windows) // 50)
            for index, window in enumerate(windows):
                ndvi, valid = _ndvi_block(src, red_band, nir_band, window)
                dst.write(ndvi, 1, window=window)
                stats.add(ndvi[valid], total=ndvi.size)
                if index % every == 0:
                    percent = 5 + 80 * index // len(windows)
                    progress(percent, f"NDVI block {index + 1}/{len(windows)}")
    return stats


def colour_map(ndvi: np.ma.MaskedArray) -> np.ndarray:
    """RGBA (uint8) image of NDVI values; masked pixels are transparent."""
    values = np.clip(np.ma.filled(ndvi, 0).astype(np.float64), -1.0, 1.0)
    rgba = np.zeros((*values.shape, 4), dtype=np.uint8)
    for channel in range(3):
        ramp = np.interp(values, _RAMP_STOPS, _RAMP_RGB[:, channel])
        rgba[..., channel] = np.rint(ramp).astype(np.uint8)
    rgba[..., 3] = np.where(np.ma.getmaskarray(ndvi), 0, 255)
    return rgba


def write_quicklook(ndvi_path: Path, destination: Path) -> tuple[int, int]:
    """PNG quicklook of the NDVI GeoTIFF, longer side at most QUICKLOOK_MAX; (width, height)."""
    with rasterio.open(ndvi_path) as ds:
        scale = max(ds.width, ds.height) / QUICKLOOK_MAX
        if scale > 1:
            shape = (max(1, round(ds.height / scale)), max(1, round(ds.width / scale)))
        else:
            shape = (ds.height, ds.width)
        data = ds.read(1, out_shape=shape, resampling=Resampling.nearest, masked=True)
    Image.fromarray(colour_map(data)).save(destination, format="PNG", optimize=True)
    return shape[1], shape[0]


def run(workspace: Path | None = None) -> int:
    root = workspace or Path.cwd()
    report_progress(0, "started", root)
    inputs = read_inputs(root)
    try:
        red_band = _band(inputs, "red_band", 3)
        nir_band = _band(inputs, "nir_band", 4)
        image = _image_path(inputs, root)
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
            stats = compute_ndvi(
                image,
                output_path(NDVI_FILE, root),
                red_band,
                nir_band,
                progress=lambda percent, message: report_progress(percent, message, root),
            )
            report_progress(90, "writing quicklook", root)
            write_quicklook(output_path(NDVI_FILE, root), output_path(QUICKLOOK_FILE, root))
    except InvalidInput as exc:
        print(f"ndvi: invalid input: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    write_outputs(
        {
            "ndvi": {"path": f"{OUTPUTS_DIR}/{NDVI_FILE}", "type": GEOTIFF},
            "quicklook": {"path": f"{OUTPUTS_DIR}/{QUICKLOOK_FILE}", "type": "image/png"},
            "statistics": {"value": stats.as_value()},
        },
        root,
    )
    report_progress(100, f"NDVI of {stats.valid} valid pixel(s)", root)
    return 0


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
