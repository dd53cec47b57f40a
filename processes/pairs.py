"""Full-resolution change products of an image pair, tiled in bands of rows with a halo.

What ``sar-change`` and ``coherence`` share: both filter each image (or their
product) with a square window of ``size`` pixels, so a tile needs ``size // 2``
rows of halo above and below its own rows; with it, every output pixel is the
same whether the scene ran as one task or many. Each runner supplies only
``compute(ref_rows, sec_rows) -> bands`` and its statistics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from processes.rasters import (
    NODATA,
    check_pair,
    integer,
    mosaic_to_cog,
    open_raster,
    staged_path,
    write_tile,
)
from processes.runtime import output_path
from processes.tiling import ArrayTask, InvalidInput, done_tiles, strip_rows, tile_path

#: (reference rows, secondary rows) -> (bands, rows, cols) float array; NaN is nodata.
Compute = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PairInputs:
    """The two staged images, the band, the filter window."""

    reference: Path
    secondary: Path
    band: int
    size: int


def pair_inputs(
    inputs: dict[str, Any], root: Path, names: tuple[str, str], size_name: str, default: int
) -> PairInputs:
    size = integer(inputs, size_name, default, 1, 101)
    if size % 2 == 0:
        raise InvalidInput(f"{size_name} must be odd (a window centred on its pixel), got {size}")
    return PairInputs(
        reference=staged_path(inputs, names[0], root),
        secondary=staged_path(inputs, names[1], root),
        band=integer(inputs, "band", 1, 1, 10_000),
        size=size,
    )


def compute_strip(
    p: PairInputs, task: ArrayTask, root: Path, compute: Compute, names: list[str], dtype: str
) -> None:
    """Compute this task's band of rows (read with its halo) and write its tile."""
    ref_ds, sec_ds = open_raster(p.reference, "first"), open_raster(p.secondary, "second")
    with ref_ds, sec_ds:
        check_pair(ref_ds, sec_ds, p.band)
        if dtype.startswith("complex") and not ref_ds.dtypes[p.band - 1].startswith("complex"):
            raise InvalidInput(f"band {p.band} is {ref_ds.dtypes[p.band - 1]}, not complex")
        start, stop = strip_rows(ref_ds.height, task)
        if start >= stop:
            return
        halo = p.size // 2
        row0, row1 = max(0, start - halo), min(ref_ds.height, stop + halo)
        rows = Window(0, row0, ref_ds.width, row1 - row0)
        ref = ref_ds.read(p.band, window=rows, out_dtype=dtype)
        sec = sec_ds.read(p.band, window=rows, out_dtype=dtype)
        bands = compute(ref, sec)[:, start - row0 : stop - row0]
        own = Window(0, start, ref_ds.width, stop - start)
        profile = {"crs": ref_ds.crs, "transform": ref_ds.window_transform(own)}
        values = np.nan_to_num(bands, nan=NODATA, posinf=NODATA, neginf=NODATA)
        write_tile(tile_path(root, task.index), values, profile, names)


def merge_strips(root: Path, task: ArrayTask, filename: str, names: list[str]) -> Path:
    """The tiles mosaicked into ``outputs/<filename>`` (a COG); its path."""
    result = output_path(filename, root)
    mosaic_to_cog(done_tiles(root, task), result, names)
    return result
