"""Runner of ``coherence``: windowed interferometric coherence and intensity change (COIN-like).

For two co-registered complex (SLC) images ``s1``, ``s2`` and a square window
of ``window`` pixels (boxcar means by :func:`scipy.ndimage.uniform_filter`)::

    coherence = |<s1 conj(s2)>| / sqrt(<|s1|^2> <|s2|^2>)        (0..1)
    intensity_change_db = 10 log10(<|s2|^2> / <|s1|^2>)

Outputs: ``coherence.tif`` (COG, float32 bands ``coherence`` and
``intensity_change_db``, the input's CRS and grid, nodata -9999), the
coherence ``quicklook.png`` with its scale, and ``statistics``. Tiled in
bands of rows with a ``window // 2`` halo (:mod:`processes.pairs`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from scipy.ndimage import uniform_filter

from processes.pairs import compute_strip, merge_strips, pair_inputs
from processes.rasters import QUICKLOOK_FILE, quicklook, write_product
from processes.runtime import output_path
from processes.tiling import ArrayTask, run_tiled

BANDS = ["coherence", "intensity_change_db"]
RESULT_FILE = "coherence.tif"


def coherence_bands(s1: np.ndarray, s2: np.ndarray, size: int) -> np.ndarray:
    """(2, rows, cols): coherence magnitude and intensity change (dB); NaN without signal."""
    cross = s1 * np.conj(s2)
    mean_cross = uniform_filter(cross.real, size) + 1j * uniform_filter(cross.imag, size)
    power1 = uniform_filter(np.abs(s1) ** 2, size)
    power2 = uniform_filter(np.abs(s2) ** 2, size)
    with np.errstate(divide="ignore", invalid="ignore"):
        coherence = np.clip(np.abs(mean_cross) / np.sqrt(power1 * power2), 0.0, 1.0)
        change = 10.0 * np.log10(power2 / power1)
    no_signal = (power1 <= 0) | (power2 <= 0)
    coherence[no_signal] = np.nan
    change[no_signal] = np.nan
    return np.stack([coherence, change])


def tile_step(inputs: dict[str, Any], task: ArrayTask, root: Path) -> None:
    p = pair_inputs(inputs, root, ("first", "second"), "window", 7)

    def compute(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
        return coherence_bands(s1, s2, p.size)

    compute_strip(p, task, root, compute, BANDS, "complex128")


def statistics(result: Path) -> dict[str, Any]:
    with rasterio.open(result) as ds:
        coherence, change = ds.read(masked=True).astype(np.float64)
    valid = ~np.ma.getmaskarray(coherence)
    stats: dict[str, Any] = {"valid_pixels": int(valid.sum()), "total_pixels": int(valid.size)}
    if valid.any():
        stats.update(
            mean_coherence=float(coherence.mean()),
            median_coherence=float(np.ma.median(coherence)),
            mean_intensity_change_db=float(change.mean()),
        )
    return stats


def merge_step(inputs: dict[str, Any], task: ArrayTask, root: Path) -> None:
    result = merge_strips(root, task, RESULT_FILE, BANDS)
    with rasterio.open(result) as ds:
        coherence = ds.read(1, masked=True).filled(np.nan)
    quicklook(coherence, output_path(QUICKLOOK_FILE, root), 0.0, 1.0, "coherence")
    stats = statistics(result)
    stats["tiles"] = task.count
    write_product(root, "coherence", RESULT_FILE, stats, inputs)


def run(workspace: Path | None = None) -> int:
    return run_tiled("coherence", tile_step, merge_step, workspace or Path.cwd())


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
