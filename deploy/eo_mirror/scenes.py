"""Synthetic sample scenes of the demo EO mirror: small COGs with known truths.

Every scene covers the same 2.56 km square near Toulouse (UTM zone 31N,
EPSG:32631, 10 m pixels, 256 x 256) and is drawn from one seeded landscape
(vegetation with a fine ground texture, bare fields, a lake), so the files
are identical on every machine:

* **optical pair** -- 4 bands ``B02`` blue, ``B03`` green, ``B04`` red, ``B08``
  near-infrared (uint16 reflectance x 10000; NDVI runs with ``red_band=3``,
  ``nir_band=4``). The second date shows the same ground moved by
  :data:`OPTICAL_SHIFT` pixels (a co-registration error to find).
* **SAR-like pair** -- 2 bands ``VV``, ``VH`` (float32 linear backscatter with
  4-look gamma speckle). The second date is brighter by :data:`SAR_CHANGE_DB`
  inside :data:`SAR_CHANGE_WINDOW` (a change to detect).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine
from scipy.ndimage import gaussian_filter

EPSG = 32631
SIZE = 256
PIXEL_M = 10.0
#: Upper-left corner (UTM 31N metres) of every scene.
ORIGIN = (370_000.0, 4_836_000.0)
SEED = 2026
#: Ground displacement from the first to the second optical date, in pixels:
#: (x east, y south). A feature at (row, col) on date 1 is at (row + y, col + x) on date 2.
OPTICAL_SHIFT = (3, 2)
#: Pixel window (row_off, col_off, height, width) brighter on the second SAR date.
SAR_CHANGE_WINDOW = (96, 64, 64, 64)
SAR_CHANGE_DB = 6.0
_MARGIN = 8


@dataclass(frozen=True)
class Band:
    """One band of a scene, as STAC ``eo:bands`` / ``sar:polarizations`` describe it."""

    name: str
    description: str
    common_name: str | None = None
    center_wavelength_um: float | None = None


@dataclass(frozen=True)
class Scene:
    """One generated scene: what it is, its pixels (bands, rows, cols) and its truths."""

    id: str
    collection: str
    title: str
    datetime: datetime
    bands: tuple[Band, ...]
    pixels: np.ndarray
    #: Known facts about the scene (the shift or the change), published as Item properties.
    truth: Mapping[str, object] = field(default_factory=dict)

    @property
    def transform(self) -> Affine:
        return Affine(PIXEL_M, 0.0, ORIGIN[0], 0.0, -PIXEL_M, ORIGIN[1])

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in the scene's CRS."""
        west, north = ORIGIN
        return (west, north - SIZE * PIXEL_M, west + SIZE * PIXEL_M, north)


OPTICAL_BANDS = (
    Band("B02", "blue", "blue", 0.49),
    Band("B03", "green", "green", 0.56),
    Band("B04", "red", "red", 0.665),
    Band("B08", "near infrared", "nir", 0.842),
)
SAR_BANDS = (
    Band("VV", "vertical transmit, vertical receive (linear sigma0)"),
    Band("VH", "vertical transmit, horizontal receive (linear sigma0)"),
)


def _landscape(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Vegetation fraction (0..1) and a water mask over ``shape``: smooth fields and a lake."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    veg = np.full(shape, 0.5)
    for _ in range(6):
        fy, fx = rng.uniform(0.005, 0.04, size=2)
        phase = rng.uniform(0, 2 * np.pi)
        veg += 0.15 * np.sin(2 * np.pi * (fy * rows + fx * cols) + phase)
    # bare, rectangular fields (ploughed parcels)
    for _ in range(5):
        r0, c0 = rng.integers(0, shape[0] - 40), rng.integers(0, shape[1] - 40)
        h, w = rng.integers(20, 40, size=2)
        veg[r0 : r0 + h, c0 : c0 + w] = rng.uniform(0.0, 0.1)
    # fine ground texture (hedges, crops, rocks; a few pixels across) that moves with
    # the ground: what image correlation locks on to in real imagery
    texture = gaussian_filter(rng.normal(0.0, 1.0, size=shape), sigma=1.2)
    veg += 0.12 * texture / texture.std()
    veg = np.clip(veg, 0.0, 1.0)
    centre_r, centre_c = shape[0] * 0.7, shape[1] * 0.3
    water = (rows - centre_r) ** 2 + (cols - centre_c) ** 2 < (shape[0] * 0.1) ** 2
    return veg, water


def _optical(veg: np.ndarray, water: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Reflectances x 10000 (uint16) of the four optical bands."""
    noise = rng.normal(0.0, 0.004, size=(4, *veg.shape))
    reflectance = np.stack(
        [
            0.06 - 0.02 * veg,  # blue
            0.09 + 0.01 * veg,  # green
            0.12 - 0.09 * veg,  # red: absorbed by vegetation
            0.18 + 0.32 * veg,  # NIR: reflected by vegetation
        ]
    )
    reflectance[:, water] = np.array([0.05, 0.04, 0.03, 0.015])[:, None]
    return np.rint(np.clip(reflectance + noise, 0.001, 1.0) * 10000).astype(np.uint16)


def _sar(veg: np.ndarray, water: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """VV, VH backscatter (float32, linear) with 4-look speckle."""
    mean = np.stack([0.05 + 0.1 * veg, 0.01 + 0.04 * veg])
    mean[:, water] = np.array([0.004, 0.0008])[:, None]
    speckle = rng.gamma(4.0, 1.0 / 4.0, size=mean.shape)
    return (mean * speckle).astype(np.float32)


def _crop(canvas: np.ndarray, dx: int = 0, dy: int = 0) -> np.ndarray:
    """The SIZE x SIZE view of ``canvas`` whose ground is moved by (dx east, dy south)."""
    top, left = _MARGIN - dy, _MARGIN - dx
    return canvas[..., top : top + SIZE, left : left + SIZE]


def make_scenes(seed: int = SEED) -> list[Scene]:
    """The mirror's four scenes, deterministic for a given ``seed``."""
    rng = np.random.default_rng(seed)
    canvas_shape = (SIZE + 2 * _MARGIN, SIZE + 2 * _MARGIN)
    veg, water = _landscape(rng, canvas_shape)
    dx, dy = OPTICAL_SHIFT
    optical_1 = _optical(_crop(veg), _crop(water), rng)
    optical_2 = _optical(_crop(veg, dx, dy), _crop(water, dx, dy), rng)
    sar_1 = _sar(_crop(veg), _crop(water), rng)
    sar_2 = _sar(_crop(veg), _crop(water), rng)
    r0, c0, h, w = SAR_CHANGE_WINDOW
    sar_2[:, r0 : r0 + h, c0 : c0 + w] *= np.float32(10 ** (SAR_CHANGE_DB / 10))
    shift = {"demo:shift_px": {"x": dx, "y": dy}, "demo:shift_of": "demo-optical-20260601"}
    change = {
        "demo:change_window": {"row_off": r0, "col_off": c0, "height": h, "width": w},
        "demo:change_db": SAR_CHANGE_DB,
        "demo:change_of": "demo-sar-20260603",
    }
    return [
        Scene(
            "demo-optical-20260601", "demo-optical", "Optical, date 1 (reference)",
            datetime(2026, 6, 1, 10, 30, tzinfo=UTC), OPTICAL_BANDS, optical_1,
        ),
        Scene(
            "demo-optical-20260611", "demo-optical", "Optical, date 2 (shifted)",
            datetime(2026, 6, 11, 10, 30, tzinfo=UTC), OPTICAL_BANDS, optical_2, shift,
        ),
        Scene(
            "demo-sar-20260603", "demo-sar", "SAR-like, date 1 (reference)",
            datetime(2026, 6, 3, 17, 45, tzinfo=UTC), SAR_BANDS, sar_1,
        ),
        Scene(
            "demo-sar-20260615", "demo-sar", "SAR-like, date 2 (changed)",
            datetime(2026, 6, 15, 17, 45, tzinfo=UTC), SAR_BANDS, sar_2, change,
        ),
    ]  # fmt: skip


def write_cog(scene: Scene, path: Path) -> None:
    """Write ``scene`` as a Cloud-Optimized GeoTIFF (deflate, 128-pixel tiles, overviews)."""
    count, height, width = scene.pixels.shape
    with rasterio.open(
        path,
        "w",
        driver="COG",
        width=width,
        height=height,
        count=count,
        dtype=scene.pixels.dtype,
        crs=CRS.from_epsg(EPSG),
        transform=scene.transform,
        compress="deflate",
        blocksize=128,
    ) as dst:
        dst.write(scene.pixels)
        for index, band in enumerate(scene.bands, start=1):
            dst.set_band_description(index, band.name)
