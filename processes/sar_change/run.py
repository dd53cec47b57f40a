"""Runner of ``sar-change``: speckle-filtered log-ratio change of two SAR amplitude images.

Both images (linear backscatter, e.g. Sentinel-1 GRD sigma0) are speckle
filtered by a ``filter_size`` x ``filter_size`` boxcar mean of the intensity
(:func:`scipy.ndimage.uniform_filter`: multi-looking), then compared as a
log-ratio in decibels, ``10 log10(post / pre)``. The change rule: a pixel has
changed when ``|log-ratio| >= threshold_db`` (+1 brighter, -1 darker, 0 none).

Outputs: ``change.tif`` (COG, float32 bands ``log_ratio_db`` and ``change``,
the input's CRS and grid, nodata -9999 where either image is 0 or not finite),
``quicklook.png`` (the log-ratio with its scale) and ``statistics`` (changed
pixels and area). Tiled in bands of rows with a ``filter_size // 2`` halo
(:mod:`processes.pairs`), run as one Slurm job array.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from scipy.ndimage import uniform_filter

from processes.pairs import PairInputs, compute_strip, merge_strips, pair_inputs
from processes.rasters import QUICKLOOK_FILE, quicklook, write_product
from processes.runtime import output_path
from processes.tiling import ArrayTask, InvalidInput, run_tiled

BANDS = ["log_ratio_db", "change"]
RESULT_FILE = "change.tif"


def _threshold(inputs: dict[str, Any]) -> float:
    value = inputs.get("threshold_db", 3.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.1 <= value <= 60:
        raise InvalidInput(f"threshold_db must be a number in 0.1..60, got {value!r}")
    return float(value)


def _params(inputs: dict[str, Any], root: Path) -> PairInputs:
    return pair_inputs(inputs, root, ("pre", "post"), "filter_size", 5)


def change_bands(pre: np.ndarray, post: np.ndarray, size: int, threshold: float) -> np.ndarray:
    """(2, rows, cols): log-ratio in dB of the filtered intensities and the change class."""
    valid = np.isfinite(pre) & np.isfinite(post) & (pre > 0) & (post > 0)
    pre_f = uniform_filter(np.where(valid, pre, 0.0), size, mode="reflect")
    post_f = uniform_filter(np.where(valid, post, 0.0), size, mode="reflect")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = 10.0 * np.log10(post_f / pre_f)
    ratio[~valid] = np.nan
    change = np.where(np.abs(ratio) >= threshold, np.sign(ratio), 0.0)
    change[~valid] = np.nan
    return np.stack([ratio, change])


def tile_step(inputs: dict[str, Any], task: ArrayTask, root: Path) -> None:
    p, threshold = _params(inputs, root), _threshold(inputs)

    def compute(pre: np.ndarray, post: np.ndarray) -> np.ndarray:
        return change_bands(pre, post, p.size, threshold)

    compute_strip(p, task, root, compute, BANDS, "float64")


def statistics(result: Path, threshold: float) -> dict[str, Any]:
    with rasterio.open(result) as ds:
        ratio, change = ds.read(masked=True).astype(np.float64)
        pixel_area = abs(ds.transform.a * ds.transform.e)
    valid = ~np.ma.getmaskarray(change)
    brighter, darker = int((change == 1).sum()), int((change == -1).sum())
    stats: dict[str, Any] = {
        "threshold_db": threshold,
        "valid_pixels": int(valid.sum()),
        "changed_pixels": brighter + darker,
        "brighter_pixels": brighter,
        "darker_pixels": darker,
        "changed_area": (brighter + darker) * pixel_area,
    }
    if valid.any():
        stats["mean_log_ratio_db"] = float(ratio.mean())
    return stats


def merge_step(inputs: dict[str, Any], task: ArrayTask, root: Path) -> None:
    threshold = _threshold(inputs)
    result = merge_strips(root, task, RESULT_FILE, BANDS)
    with rasterio.open(result) as ds:
        ratio = ds.read(1, masked=True).filled(np.nan)
    span = max(threshold * 2, 1.0)
    quicklook(ratio, output_path(QUICKLOOK_FILE, root), -span, span, "log-ratio (dB)")
    stats = statistics(result, threshold)
    stats["tiles"] = task.count
    write_product(root, "change", RESULT_FILE, stats, inputs)


def run(workspace: Path | None = None) -> int:
    return run_tiled("sar-change", tile_step, merge_step, workspace or Path.cwd())


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
