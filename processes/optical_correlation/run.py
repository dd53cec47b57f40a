"""Runner of ``optical-correlation``: dense sub-pixel displacement of an optical pair.

Every output cell is one ``step`` x ``step`` block of the input grid; its
displacement is the sub-pixel phase correlation
(:func:`skimage.registration.phase_cross_correlation`, ``upsample_factor``)
of the ``window`` x ``window`` windows of both images centred on the block.
Outputs (``outputs/``):

* ``displacement.tif`` -- a COG of 4 float32 bands in the input's CRS, on the
  input grid subsampled by ``step``: ``east`` and ``north`` displacement in CRS
  units (metres for a projected CRS; north positive), ``magnitude``, and
  ``score`` (the normalised correlation peak, 0..1). Nodata -9999 where a
  window leaves the image or the window has no texture.
* ``quicklook.png`` -- the magnitude, colour-mapped, with its scale;
* ``statistics`` -- median displacement (CRS units and pixels), mean score,
  valid cells.

Run as a Slurm job array (``hpc.tiling``): each task computes one band of
output rows (reading its rows plus half a window of halo), the last one merges
(:mod:`processes.tiling`). Exit codes: 0 success; 2 invalid input (one line on
stderr); anything else is a bug (traceback on stderr).
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.transform import Affine
from rasterio.windows import Window
from skimage.filters import window
from skimage.registration import phase_cross_correlation

from processes.rasters import (
    NODATA,
    QUICKLOOK_FILE,
    check_pair,
    integer,
    mosaic_to_cog,
    open_raster,
    quicklook,
    staged_path,
    write_product,
    write_tile,
)
from processes.runtime import output_path
from processes.tiling import (
    ArrayTask,
    InvalidInput,
    done_tiles,
    run_tiled,
    strip_rows,
    tile_path,
)

BANDS = ["east", "north", "magnitude", "score"]
RESULT_FILE = "displacement.tif"


@dataclass(frozen=True)
class Params:
    """The validated inputs of one run."""

    reference: Path
    secondary: Path
    band: int
    window: int
    step: int
    upsample: int


def params(inputs: dict[str, Any], workspace: Path) -> Params:
    return Params(
        reference=staged_path(inputs, "reference", workspace),
        secondary=staged_path(inputs, "secondary", workspace),
        band=integer(inputs, "band", 1, 1, 10_000),
        window=integer(inputs, "window", 32, 8, 512),
        step=integer(inputs, "step", 8, 1, 512),
        upsample=integer(inputs, "upsample", 20, 1, 1000),
    )


def check_window(ref: rasterio.io.DatasetReader, p: Params) -> None:
    if p.window > min(ref.width, ref.height):
        raise InvalidInput(f"window={p.window} is larger than the image")


def grid_shape(width: int, height: int, step: int) -> tuple[int, int]:
    """(rows, cols) of the output grid: one cell per whole step block."""
    return height // step, width // step


def correlate_window(a: np.ndarray, sec: np.ndarray, top: int, left: int, p: Params) -> Any:
    """(dx, dy, score) of the ground in the reference window ``a`` (at ``top``,
    ``left`` of ``sec``'s rows), or None when it cannot be measured.

    Two passes: a whole-pixel estimate, then the secondary window re-read where
    the ground went and correlated again (Hann-tapered, ``upsample`` times
    finer) for the sub-pixel remainder. One pass at a fixed place is biased
    towards zero, as part of each window then holds ground the other lacks."""
    w = p.window
    b = sec[top : top + w, left : left + w]
    if a.std() == 0 or b.std() == 0:
        return None  # no texture: no displacement to measure
    coarse, _, _ = phase_cross_correlation(a, b, normalization=None)
    dy, dx = -int(coarse[0]), -int(coarse[1])
    if not (0 <= top + dy and top + dy + w <= sec.shape[0]):
        return None
    if not (0 <= left + dx and left + dx + w <= sec.shape[1]):
        return None
    b = sec[top + dy : top + dy + w, left + dx : left + dx + w]
    taper = window("hann", (w, w))
    fine, error, _ = phase_cross_correlation(
        (a - a.mean()) * taper,
        (b - b.mean()) * taper,
        upsample_factor=p.upsample,
        normalization=None,
    )
    return dx - fine[1], dy - fine[0], float(np.sqrt(max(0.0, 1.0 - float(error) ** 2)))


def correlate_rows(
    ref: np.ndarray, sec: np.ndarray, row0: int, rows: range, cols: int, p: Params
) -> np.ndarray:
    """(4, len(rows), cols): pixel shifts dx (east) and dy (south), an unused band, score.

    ``ref``/``sec`` hold input rows from ``row0``; output row ``r`` is centred
    on input row ``r * step + step // 2``. NaN where nothing was measured."""
    out = np.full((4, len(rows), cols), np.nan, dtype=np.float64)
    half = p.window // 2
    width = ref.shape[1]
    for i, r in enumerate(rows):
        top = r * p.step + p.step // 2 - half - row0
        if top < 0 or top + p.window > ref.shape[0]:
            continue
        for c in range(cols):
            left = c * p.step + p.step // 2 - half
            if left < 0 or left + p.window > width:
                continue
            a = ref[top : top + p.window, left : left + p.window]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                found = correlate_window(a, sec, top, left, p)
            if found is not None:
                out[0, i, c], out[1, i, c], out[3, i, c] = found
    return out


def to_ground(pixels: np.ndarray, transform: Affine) -> np.ndarray:
    """Pixel shifts (dx, dy, _, score) -> east, north, magnitude (CRS units), score."""
    east = pixels[0] * transform.a
    north = pixels[1] * transform.e  # e < 0 for north-up images: rows down = south
    return np.stack([east, north, np.hypot(east, north), pixels[3]])


def compute_tile(p: Params, task: ArrayTask, workspace: Path) -> Path | None:
    """Correlate this task's band of output rows; write its tile; None when it is empty."""
    ref_ds, sec_ds = open_raster(p.reference, "reference"), open_raster(p.secondary, "secondary")
    with ref_ds, sec_ds:
        check_pair(ref_ds, sec_ds, p.band)
        check_window(ref_ds, p)
        rows_out, cols_out = grid_shape(ref_ds.width, ref_ds.height, p.step)
        start, stop = strip_rows(rows_out, task)
        if start >= stop:
            return None
        # halo: a whole window each side (the secondary window moves up to half a window)
        row0 = max(0, start * p.step + p.step // 2 - p.window)
        row1 = min(ref_ds.height, (stop - 1) * p.step + p.step // 2 + p.window)
        rows = Window(0, row0, ref_ds.width, row1 - row0)
        ref = ref_ds.read(p.band, window=rows, out_dtype="float64")
        sec = sec_ds.read(p.band, window=rows, out_dtype="float64")
        pixels = correlate_rows(ref, sec, row0, range(start, stop), cols_out, p)
        grid = ref_ds.transform @ Affine.scale(p.step)
        values = np.nan_to_num(to_ground(pixels, ref_ds.transform), nan=NODATA)
        profile = {"crs": ref_ds.crs, "transform": grid @ Affine.translation(0, start)}
        path = tile_path(workspace, task.index)
        write_tile(path, values, profile, BANDS)
        return path


def statistics(result: Path) -> dict[str, Any]:
    """Medians of the valid cells (robust to the odd mismatch), the mean score."""
    with rasterio.open(result) as ds:
        east, north, magnitude, score = ds.read(masked=True).astype(np.float64)
    valid = ~np.ma.getmaskarray(east)
    stats: dict[str, Any] = {"valid_cells": int(valid.sum()), "total_cells": int(valid.size)}
    if valid.any():
        stats.update(
            median_east=float(np.ma.median(east)),
            median_north=float(np.ma.median(north)),
            median_magnitude=float(np.ma.median(magnitude)),
            mean_score=float(score.mean()),
        )
    return stats


def merge_outputs(
    workspace: Path, task: ArrayTask, pixel_size: tuple[float, float], inputs: dict[str, Any]
) -> None:
    """Mosaic every tile into the COG, draw the quicklook, write outputs.json."""
    result = output_path(RESULT_FILE, workspace)
    mosaic_to_cog(done_tiles(workspace, task), result, BANDS)
    with rasterio.open(result) as ds:
        magnitude = ds.read(3, masked=True).filled(np.nan)
    finite = magnitude[np.isfinite(magnitude)]
    high = float(np.percentile(finite, 98)) if finite.size else 1.0
    quicklook(magnitude, output_path(QUICKLOOK_FILE, workspace), 0.0, high, "displacement")
    stats = statistics(result)
    if "median_east" in stats:
        stats["median_east_px"] = stats["median_east"] / pixel_size[0]
        stats["median_south_px"] = -stats["median_north"] / pixel_size[1]
    stats["tiles"] = task.count
    write_product(workspace, "displacement", RESULT_FILE, stats, inputs)


def tile_step(inputs: dict[str, Any], task: ArrayTask, root: Path) -> None:
    compute_tile(params(inputs, root), task, root)


def merge_step(inputs: dict[str, Any], task: ArrayTask, root: Path) -> None:
    with rasterio.open(params(inputs, root).reference) as ds:
        pixel_size = (ds.res[0], ds.res[1])
    merge_outputs(root, task, pixel_size, inputs)


def run(workspace: Path | None = None) -> int:
    return run_tiled("optical-correlation", tile_step, merge_step, workspace or Path.cwd())


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
