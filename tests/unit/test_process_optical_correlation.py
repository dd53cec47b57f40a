"""optical-correlation's runner without Slurm: sub-pixel ground truth, tiles, merge, bad input.

The sub-pixel pair is generated here: a random texture moved by a known
fractional offset with :func:`scipy.ndimage.fourier_shift` (exact for a
band-limited texture), written as GeoTIFFs with rasterio. The runner runs
as every task of a would-be array in turn (``SLURM_ARRAY_TASK_*``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.transform import from_origin
from rio_cogeo.cogeo import cog_validate
from scipy.ndimage import fourier_shift, gaussian_filter

from processes.optical_correlation import run as oc
from processes.registry import ProcessRegistry
from processes.tiling import ArrayTask, claim_merge, mark_done, strip_rows
from processes.zarr_output import ZARR

pytestmark = pytest.mark.unit

#: (east, south) ground displacement in pixels, sub-pixel on purpose.
SHIFT = (1.3, -0.7)
SIZE = 160


def write_pair(root: Path, shift: tuple[float, float] = SHIFT, size: int = SIZE) -> None:
    rng = np.random.default_rng(7)
    texture = gaussian_filter(rng.normal(size=(size, size)), 1.2)
    moved = np.fft.ifftn(fourier_shift(np.fft.fftn(texture), (shift[1], shift[0]))).real
    (root / "inputs").mkdir(parents=True, exist_ok=True)
    for name, data in (("ref.tif", texture), ("sec.tif", moved)):
        profile = {
            "driver": "GTiff",
            "width": size,
            "height": size,
            "count": 1,
            "dtype": "float32",
            "crs": "EPSG:32631",
            "transform": from_origin(500000, 4800000, 10, 10),
        }
        with rasterio.open(root / "inputs" / name, "w", **profile) as dst:
            dst.write(data.astype(np.float32), 1)


def write_inputs(root: Path, **inputs: object) -> None:
    refs = {
        "reference": {"href": "http://x/ref.tif", "path": "inputs/ref.tif"},
        "secondary": {"href": "http://x/sec.tif", "path": "inputs/sec.tif"},
    }
    payload = {"inputs": {**refs, "window": 32, "step": 8, "upsample": 50, **inputs}}
    (root / "inputs.json").write_text(json.dumps(payload))


def run_array(root: Path, tasks: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    codes = []
    for index in range(tasks):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(index))
        monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", str(tasks))
        codes.append(oc.run(root))
    return codes


def test_sub_pixel_shift_is_recovered_and_tiles_do_not_change_the_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = []
    for tasks in (1, 3):
        root = tmp_path / f"t{tasks}"
        write_pair(root)
        write_inputs(root)
        assert run_array(root, tasks, monkeypatch) == [0] * tasks
        manifest = json.loads((root / "outputs.json").read_text())["outputs"]
        stats = manifest["statistics"]["value"]
        assert stats["median_east_px"] == pytest.approx(SHIFT[0], abs=0.05)
        assert stats["median_south_px"] == pytest.approx(SHIFT[1], abs=0.05)
        assert stats["tiles"] == tasks and stats["mean_score"] > 0.9
        cog = root / manifest["displacement"]["path"]
        assert cog_validate(str(cog), quiet=True)[0]
        with rasterio.open(cog) as ds:
            assert ds.descriptions == tuple(oc.BANDS) and ds.crs.to_epsg() == 32631
            assert ds.res == (80.0, 80.0) and ds.shape == (SIZE // 8, SIZE // 8)
            results.append(ds.read())
        assert (root / manifest["quicklook"]["path"]).stat().st_size > 0
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize(
    ("inputs", "message"),
    [({"band": 2}, "band=2 is out of range"), ({"window": 256}, "larger than the image")],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    inputs: dict[str, int],
    message: str,
) -> None:
    write_pair(tmp_path)
    write_inputs(tmp_path, **inputs)
    assert run_array(tmp_path, 2, monkeypatch) == [2, 2]
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "outputs.json").exists()


def test_images_of_different_sizes_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_pair(tmp_path)
    other = tmp_path / "other"
    write_pair(other, size=128)
    (other / "inputs" / "sec.tif").replace(tmp_path / "inputs" / "sec.tif")
    write_inputs(tmp_path)
    assert run_array(tmp_path, 1, monkeypatch) == [2]
    assert "differ in size: 160x160 vs 128x128" in capsys.readouterr().err


def test_strips_cover_every_row_once_and_one_task_merges(tmp_path: Path) -> None:
    for rows in (1, 7, 20, 64):
        for count in (1, 3, 4, 16):
            covered = [
                r for i in range(count) for r in range(*strip_rows(rows, ArrayTask(i, count)))
            ]
            assert covered == list(range(rows))
    tasks = [ArrayTask(i, 3) for i in range(3)]
    counts = [mark_done(tmp_path, t) for t in tasks]
    assert counts == [1, 2, 3]
    claims = [claim_merge(tmp_path, t, 3) for t in tasks]
    assert claims.count(True) == 1  # every task may see all marks: one merges
    assert not claim_merge(tmp_path, tasks[0], 2)


def test_the_process_is_tiled_by_its_tiles_input() -> None:
    process = ProcessRegistry.builtin().get("optical-correlation")
    assert process.array_size_for({}) == 1
    assert process.array_size_for({"tiles": 8}) == 8
    assert process.array_size_for({"tiles": 5000}) == 64  # bounded by hpc.tiling.maximum
    assert ProcessRegistry.builtin().get("ndvi").array_size_for({"tiles": 8}) is None


def test_format_zarr_writes_a_consolidated_store_equal_to_the_cog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = {}
    for fmt in ("cog", "zarr"):
        root = tmp_path / fmt
        write_pair(root)
        write_inputs(root, format=fmt)
        assert run_array(root, 2, monkeypatch) == [0, 0]
        stores[fmt] = (
            root
            / json.loads((root / "outputs.json").read_text())["outputs"]["displacement"]["path"]
        )
    manifest = json.loads((tmp_path / "zarr" / "outputs.json").read_text())["outputs"]
    assert manifest["displacement"] == {"path": "outputs/displacement.zarr", "type": ZARR}
    assert not (tmp_path / "zarr" / "outputs" / "displacement.tif").exists()
    assert (stores["zarr"] / ".zmetadata").is_file()  # consolidated
    with rasterio.open(stores["cog"]) as ds:
        cog, transform = ds.read(masked=True), ds.transform
    dataset = xr.open_zarr(stores["zarr"], consolidated=True)
    assert sorted(dataset.data_vars) == sorted(oc.BANDS)
    assert dataset["east"].dims == ("y", "x")
    assert float(dataset.x[0]) == transform.c + transform.a / 2  # pixel centres
    assert float(dataset.y[0]) == transform.f + transform.e / 2
    assert "UTM zone 31N" in dataset["spatial_ref"].attrs["crs_wkt"]
    assert dataset.attrs["proj:code"] == "EPSG:32631"
    for index, name in enumerate(oc.BANDS):
        values = dataset[name].values  # nodata decoded as NaN
        np.testing.assert_array_equal(np.isnan(values), cog[index].mask)
        np.testing.assert_array_equal(values[~np.isnan(values)], cog[index].compressed())


def test_an_unknown_format_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_pair(tmp_path)
    write_inputs(tmp_path, format="netcdf")
    assert run_array(tmp_path, 1, monkeypatch) == [2]
    assert "format must be one of cog, zarr" in capsys.readouterr().err
