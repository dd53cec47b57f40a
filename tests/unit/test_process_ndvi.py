"""The ndvi process: its runner as a real subprocess on GeoTIFFs made in the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import Affine

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
NODATA = -9999.0
CRS_UTM33 = CRS.from_epsg(32633)
TRANSFORM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4500000.0)

# red (band 3) and NIR (band 4) of a 4 x 3 image, with the NDVI worked out by hand.
RED = np.array([[10, 30, 0, 5], [0, 10, 10, 20], [40, 10, 90, 10]], dtype=np.uint16)
NIR = np.array([[30, 10, 0, 5], [20, 30, 30, 60], [10, 30, 10, 30]], dtype=np.uint16)
EXPECTED = np.array(
    [[0.5, -0.5, NODATA, 0.0], [1.0, 0.5, 0.5, 0.5], [-0.6, 0.5, -0.8, 0.5]], dtype=np.float32
)
RAMP_GREEN_05 = (102, 189, 99)  # colour of NDVI 0.5
RAMP_DARK_GREEN_1 = (0, 104, 55)  # colour of NDVI 1.0


def write_geotiff(path: Path, bands: list[np.ndarray], nodata: float | None = None) -> None:
    height, width = bands[0].shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=width,
        height=height,
        count=len(bands),
        dtype=bands[0].dtype,
        crs=CRS_UTM33,
        transform=TRANSFORM,
        nodata=nodata,
    ) as dst:
        for index, band in enumerate(bands, start=1):
            dst.write(band, index)


def make_workspace(tmp_path: Path, bands: list[np.ndarray], **inputs: Any) -> Path:
    (tmp_path / "inputs").mkdir()
    write_geotiff(tmp_path / "inputs" / "image.tif", bands, nodata=inputs.pop("nodata", None))
    image = {"href": "https://example.org/scene.tif", "path": "inputs/image.tif"}
    payload = {"inputs": {"image": image, **inputs}}
    (tmp_path / "inputs.json").write_text(json.dumps(payload), encoding="utf-8")
    return tmp_path


def four_bands() -> list[np.ndarray]:
    ones = np.ones_like(RED)
    return [ones, ones * 2, RED, NIR]


def run_ndvi(workspace: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "processes.ndvi.run"],
        cwd=workspace,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def manifest(workspace: Path) -> dict[str, Any]:
    return json.loads((workspace / "outputs.json").read_text(encoding="utf-8"))["outputs"]


def test_ndvi_values_georeferencing_quicklook_and_statistics(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, four_bands())
    done = run_ndvi(ws)
    assert done.returncode == 0, done.stderr

    outputs = manifest(ws)
    assert outputs["ndvi"] == {
        "path": "outputs/ndvi.tif",
        "type": "image/tiff; application=geotiff",
    }
    assert outputs["quicklook"] == {"path": "outputs/quicklook.png", "type": "image/png"}

    with rasterio.open(ws / "outputs" / "ndvi.tif") as ds:
        assert ds.driver == "GTiff"
        assert ds.count == 1
        assert ds.dtypes == ("float32",)
        assert ds.nodata == NODATA
        assert ds.crs == CRS_UTM33
        assert ds.transform == TRANSFORM
        assert (ds.width, ds.height) == (4, 3)
        data = ds.read(1)
    np.testing.assert_allclose(data, EXPECTED, rtol=0, atol=1e-6)

    with Image.open(ws / "outputs" / "quicklook.png") as png:
        assert png.format == "PNG"
        assert png.size == (4, 3)
        assert png.mode == "RGBA"
        pixels = np.asarray(png)
    assert pixels[0, 2, 3] == 0  # nodata is transparent
    assert (pixels[..., 3] == 255).sum() == 11
    assert tuple(pixels[0, 0, :3]) == RAMP_GREEN_05
    assert tuple(pixels[1, 0, :3]) == RAMP_DARK_GREEN_1

    valid = EXPECTED[EXPECTED != NODATA].astype(np.float64)
    stats = outputs["statistics"]["value"]
    assert stats["valid_pixels"] == 11
    assert stats["nodata_pixels"] == 1
    assert stats["total_pixels"] == 12
    assert stats["min"] == pytest.approx(-0.8)
    assert stats["max"] == pytest.approx(1.0)
    assert stats["mean"] == pytest.approx(valid.mean(), abs=1e-6)
    assert stats["mean"] == pytest.approx(2.1 / 11, abs=1e-6)
    assert stats["stddev"] == pytest.approx(valid.std(), abs=1e-6)

    progress = json.loads((ws / "progress.json").read_text(encoding="utf-8"))
    assert progress["percent"] == 100


def test_band_numbers_are_chosen_by_inputs(tmp_path: Path) -> None:
    # red in band 1 and NIR in band 2: the swap gives the opposite sign.
    ws = make_workspace(tmp_path, [NIR, RED], red_band=2, nir_band=1)
    done = run_ndvi(ws)
    assert done.returncode == 0, done.stderr
    with rasterio.open(ws / "outputs" / "ndvi.tif") as ds:
        data = ds.read(1)
    np.testing.assert_allclose(data, EXPECTED, atol=1e-6)


def test_input_nodata_pixels_become_nodata(tmp_path: Path) -> None:
    red = RED.copy()
    red[2, 3] = 65535
    ones = np.ones_like(red)
    ws = make_workspace(tmp_path, [ones, ones, red, NIR], nodata=65535)
    done = run_ndvi(ws)
    assert done.returncode == 0, done.stderr
    with rasterio.open(ws / "outputs" / "ndvi.tif") as ds:
        data = ds.read(1)
    expected = EXPECTED.copy()
    expected[2, 3] = NODATA
    np.testing.assert_allclose(data, expected, atol=1e-6)
    assert manifest(ws)["statistics"]["value"]["valid_pixels"] == 10


def test_large_raster_is_processed_in_blocks(tmp_path: Path) -> None:
    rng = np.random.default_rng(42)
    shape = (300, 1100)
    red = rng.integers(0, 4000, shape, dtype=np.uint16)
    nir = rng.integers(0, 4000, shape, dtype=np.uint16)
    red[:50, :60] = 0
    nir[:50, :60] = 0
    ws = make_workspace(tmp_path, [red, nir], red_band=1, nir_band=2)
    done = run_ndvi(ws)
    assert done.returncode == 0, done.stderr

    r, n = red.astype(np.float64), nir.astype(np.float64)
    total = r + n
    ok = total != 0
    expected = np.full(shape, NODATA, dtype=np.float32)
    expected[ok] = ((n - r)[ok] / total[ok]).astype(np.float32)
    with rasterio.open(ws / "outputs" / "ndvi.tif") as ds:
        assert ds.block_shapes == [(256, 256)]
        data = ds.read(1)
    np.testing.assert_array_equal(data, expected)

    stats = manifest(ws)["statistics"]["value"]
    assert stats["valid_pixels"] == int(ok.sum())
    assert stats["nodata_pixels"] == int((~ok).sum()) >= 3000
    assert stats["mean"] == pytest.approx(expected[ok].astype(np.float64).mean(), abs=1e-9)
    assert stats["min"] == pytest.approx(float(expected[ok].min()))
    assert stats["max"] == pytest.approx(float(expected[ok].max()))

    with Image.open(ws / "outputs" / "quicklook.png") as png:
        assert png.size == (1024, 279)  # longer side capped at 1024, aspect kept


def test_all_nodata_gives_counts_only(tmp_path: Path) -> None:
    zeros = np.zeros((3, 4), dtype=np.uint16)
    ws = make_workspace(tmp_path, [zeros, zeros], red_band=1, nir_band=2)
    done = run_ndvi(ws)
    assert done.returncode == 0, done.stderr
    stats = manifest(ws)["statistics"]["value"]
    assert stats == {"valid_pixels": 0, "nodata_pixels": 12, "total_pixels": 12}


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        ({"red_band": 5}, "red_band=5 is out of range: the image has 4 band(s)"),
        ({"nir_band": 9}, "nir_band=9 is out of range: the image has 4 band(s)"),
        ({"red_band": 0}, "red_band must be a 1-based band number"),
        ({"nir_band": "4"}, "nir_band must be a 1-based band number"),
        ({"red_band": 4, "nir_band": 4}, "red_band and nir_band must differ"),
    ],
)
def test_bad_band_exits_2_with_message(tmp_path: Path, inputs: dict, fragment: str) -> None:
    ws = make_workspace(tmp_path, four_bands(), **inputs)
    done = run_ndvi(ws)
    assert done.returncode == 2
    assert fragment in done.stderr
    assert "Traceback" not in done.stderr
    assert not (ws / "outputs.json").exists()


def test_default_bands_need_four_bands(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, [RED, NIR])
    done = run_ndvi(ws)
    assert done.returncode == 2
    assert "red_band=3 is out of range: the image has 2 band(s)" in done.stderr


def test_unreadable_or_missing_image_exits_2(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, four_bands())
    (ws / "inputs" / "image.tif").write_bytes(b"this is not a tiff")
    done = run_ndvi(ws)
    assert done.returncode == 2
    assert "cannot read the image as a raster" in done.stderr

    (ws / "inputs.json").write_text(json.dumps({"inputs": {"image": "inline"}}))
    done = run_ndvi(ws)
    assert done.returncode == 2
    assert "must be a GeoTIFF given by reference" in done.stderr

    (ws / "inputs.json").write_text(json.dumps({"inputs": {}}))
    done = run_ndvi(ws)
    assert done.returncode == 2
    assert "the input 'image' is required" in done.stderr
