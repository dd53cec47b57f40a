"""sar-change and coherence runners without Slurm, against known truths.

* sar-change on the demo EO mirror's SAR-like pair (``deploy/eo_mirror``): the
  second date is +6 dB inside a known block; the change mask must find it
  with F1 >= 0.95, the same with 1 or 4 tiles.
* coherence on complex images generated here with rasterio: a pair of
  identical images is coherent (~1), a pair of independent ones is not.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from deploy.eo_mirror.scenes import SAR_CHANGE_WINDOW, make_scenes, write_cog
from processes.coherence import run as coherence
from processes.sar_change import run as sar_change

pytestmark = pytest.mark.unit


def refs(first: str, second: str) -> dict[str, object]:
    return {
        first: {"href": "http://x/a.tif", "path": "inputs/a.tif"},
        second: {"href": "http://x/b.tif", "path": "inputs/b.tif"},
    }


def run_tasks(run: object, root: Path, tasks: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    codes = []
    for index in range(tasks):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(index))
        monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", str(tasks))
        codes.append(run(root))  # type: ignore[operator]
    return codes


def outputs(root: Path) -> dict[str, dict[str, object]]:
    data: dict[str, dict[str, object]] = json.loads((root / "outputs.json").read_text())["outputs"]
    return data


def test_sar_change_finds_the_known_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scenes = {s.id: s for s in make_scenes()}
    masks = []
    for tasks in (1, 4):
        root = tmp_path / f"t{tasks}"
        (root / "inputs").mkdir(parents=True)
        write_cog(scenes["demo-sar-20260603"], root / "inputs" / "a.tif")
        write_cog(scenes["demo-sar-20260615"], root / "inputs" / "b.tif")
        payload = {"inputs": {**refs("pre", "post"), "band": 1, "tiles": tasks}}
        (root / "inputs.json").write_text(json.dumps(payload))
        assert run_tasks(sar_change.run, root, tasks, monkeypatch) == [0] * tasks
        result = outputs(root)
        with rasterio.open(root / str(result["change"]["path"])) as ds:
            masks.append(ds.read(2))
            assert ds.crs.to_epsg() == 32631 and ds.shape == (256, 256)
        stats = result["statistics"]["value"]
        assert isinstance(stats, dict) and stats["tiles"] == tasks
    np.testing.assert_array_equal(masks[0], masks[1])
    truth = np.zeros((256, 256), dtype=bool)
    r0, c0, h, w = SAR_CHANGE_WINDOW
    truth[r0 : r0 + h, c0 : c0 + w] = True
    found = masks[0] != 0  # any change, brighter or darker, counts against precision
    tp = int((found & truth).sum())
    f1 = 2 * tp / (found.sum() + truth.sum())
    assert f1 >= 0.95, f1
    assert (masks[0][truth] == 1).mean() > 0.9  # the block got brighter


def write_complex(path: Path, data: np.ndarray) -> None:
    profile = {
        "driver": "GTiff",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": "complex64",
        "crs": "EPSG:32631",
        "transform": from_origin(500000, 4800000, 10, 10),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(np.complex64), 1)


@pytest.mark.parametrize(("same", "low", "high"), [(True, 0.99, 1.0), (False, 0.0, 0.3)])
def test_coherence_of_identical_and_independent_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, same: bool, low: float, high: float
) -> None:
    rng = np.random.default_rng(3)
    shape = (96, 80)
    s1 = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    s2 = s1 * np.exp(1j * 0.4) if same else rng.normal(size=shape) + 1j * rng.normal(size=shape)
    (tmp_path / "inputs").mkdir()
    write_complex(tmp_path / "inputs" / "a.tif", s1)
    write_complex(tmp_path / "inputs" / "b.tif", s2)
    payload = {"inputs": {**refs("first", "second"), "window": 9, "tiles": 3}}
    (tmp_path / "inputs.json").write_text(json.dumps(payload))
    assert run_tasks(coherence.run, tmp_path, 3, monkeypatch) == [0, 0, 0]
    stats = outputs(tmp_path)["statistics"]["value"]
    assert isinstance(stats, dict)
    assert low <= stats["median_coherence"] <= high, stats
    if same:
        assert abs(stats["mean_intensity_change_db"]) < 0.01


def test_coherence_refuses_a_real_valued_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "inputs").mkdir()
    scene = make_scenes()[2]
    write_cog(scene, tmp_path / "inputs" / "a.tif")
    write_cog(scene, tmp_path / "inputs" / "b.tif")
    payload = {"inputs": {**refs("first", "second")}}
    (tmp_path / "inputs.json").write_text(json.dumps(payload))
    assert run_tasks(coherence.run, tmp_path, 1, monkeypatch) == [2]
    err = capsys.readouterr().err
    assert "is float32, not complex" in err and "Traceback" not in err
