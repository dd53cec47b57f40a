"""The tile count of a tiled process from its image's size, read at submission.

Real GeoTIFFs written by rasterio, read from an allowed local root and over
HTTP from a real server on loopback (allow-listed ``127.0.0.1/32``, as in the
staging suites); the quote of the optical correlation multiplies by the
derived tile count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles

from gateway.app import build_services, create_app
from gateway.egress import EgressPolicy
from gateway.jobs.execute_request import parse_execute_request
from gateway.settings import Settings
from gateway.staging.probe import ProbeLimits, ReferenceProbe
from gateway.staging.raster_size import HEADER_BYTES, TileSizer, shape_of_header
from processes.definition import ProcessDefinition, Tiling
from processes.registry import ProcessRegistry
from tests.accounting_support import HeaderAuth, as_user
from tests.workflow_fixtures import FileServer

pytestmark = pytest.mark.unit

ROWS, COLS = 3000, 400  # float32: 4.8 MB, far more than the header read


def write_geotiff(path: Path, rows: int = ROWS, cols: int = COLS) -> Path:
    data = np.random.default_rng(1).random((rows, cols), dtype=np.float32)
    profile = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:32632",
        "transform": from_origin(500000, 5000000, 10, 10),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path


@pytest.fixture
def correlation() -> ProcessDefinition:
    return ProcessRegistry.builtin().get("optical-correlation")


def sizer(roots: list[str] | None = None) -> TileSizer:
    probe = ReferenceProbe(EgressPolicy(allow_cidrs=["127.0.0.1/32"]), ProbeLimits())
    return TileSizer(probe, roots)


def body(href: str, **inputs: object) -> dict[str, object]:
    return {"inputs": {"reference": {"href": href}, "secondary": {"href": href}, **inputs}}


def test_tiles_for_rows_is_one_per_tile_rows_within_the_bounds() -> None:
    tiling = Tiling(size_from="image", tile_rows=1024, maximum=8)
    assert [tiling.tiles_for_rows(r) for r in (1, 1024, 1025, 3000, 10**6)] == [1, 1, 2, 3, 8]


def test_a_size_from_that_is_no_input_is_refused_when_loading(
    correlation: ProcessDefinition,
) -> None:
    data = correlation.model_dump()
    data["hpc"]["tiling"]["size_from"] = "nope"
    with pytest.raises(ValueError, match="size_from 'nope' is not an input"):
        ProcessDefinition.model_validate(data)


def test_the_header_of_a_large_geotiff_is_in_its_first_bytes(tmp_path: Path) -> None:
    path = write_geotiff(tmp_path / "plain.tif")
    cog = tmp_path / "cog.tif"
    cog_translate(path, cog, cog_profiles.get("deflate"), quiet=True)
    for file in (path, cog):
        assert file.stat().st_size > HEADER_BYTES
        head = shape_of_header(file.read_bytes()[:HEADER_BYTES])
        assert head is not None and (head.rows, head.cols) == (ROWS, COLS)
    assert shape_of_header(b"not a raster at all") is None


def test_the_tile_count_comes_from_the_image_served_over_http(
    file_server: FileServer, correlation: ProcessDefinition
) -> None:
    write_geotiff(file_server.root / "scene.tif")
    request = parse_execute_request(correlation, body(file_server.href("scene.tif")))
    sized = sizer()(correlation, request)
    assert sized.inputs["tiles"] == 3  # 3000 rows, 1024 rows per tile
    ((_, headers),) = file_server.state.log  # one ranged GET, not the whole file
    assert headers.get("Range") == f"bytes=0-{HEADER_BYTES - 1}"
    assert "tiles" not in request.inputs  # the parsed request is not changed in place


def test_the_clients_tile_count_overrides_the_image_size(
    file_server: FileServer, correlation: ProcessDefinition
) -> None:
    write_geotiff(file_server.root / "scene.tif")
    request = parse_execute_request(correlation, body(file_server.href("scene.tif"), tiles=5))
    assert sizer()(correlation, request).inputs["tiles"] == 5


def test_a_local_file_is_sized_and_an_unreadable_image_keeps_the_default(
    tmp_path: Path, file_server: FileServer, correlation: ProcessDefinition
) -> None:
    write_geotiff(tmp_path / "scene.tif", rows=5000)
    (file_server.root / "text.tif").write_text("not a raster")
    local = sizer([str(tmp_path)])
    request = parse_execute_request(correlation, body((tmp_path / "scene.tif").as_uri()))
    assert local(correlation, request).inputs["tiles"] == 5
    for href in (
        file_server.href("text.tif"),
        file_server.href("missing.tif"),
        "s3://bucket/scene.tif",
    ):
        request = parse_execute_request(correlation, body(href))
        assert "tiles" not in local(correlation, request).inputs
        assert correlation.array_size_for(request.inputs) == 1


def test_the_quote_counts_the_tiles_of_the_image(tmp_path: Path) -> None:
    write_geotiff(tmp_path / "scene.tif", rows=2100)
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path}/app.db"},  # type: ignore[arg-type]
        publication={"root": str(tmp_path / "pub")},  # type: ignore[arg-type]
        workflow={"staging": {"local_roots": [str(tmp_path)]}},  # type: ignore[arg-type]
    )
    services = build_services(settings)
    try:
        client = create_app(settings, services, authenticator=HeaderAuth()).test_client()
        href = (tmp_path / "scene.tif").as_uri()

        def quote(**inputs: object) -> Any:
            resp = client.post(
                "/processes/optical-correlation/quotations",
                json=body(href, **inputs),
                headers=as_user("alice"),
            )
            assert resp.status_code == 200, resp.get_json()
            return resp.get_json()

        derived, one = quote(), quote(tiles=1)
        assert derived["basis"]["array_tasks"] == 3  # 2100 rows, 1024 rows per tile
        assert "array_tasks" not in one["basis"]
        assert derived["max_core_hours"] == pytest.approx(3 * one["max_core_hours"], rel=1e-4)
    finally:
        services.close()


def test_no_http_image_is_read_when_the_probe_is_off(
    file_server: FileServer, correlation: ProcessDefinition
) -> None:
    write_geotiff(file_server.root / "scene.tif")
    request = parse_execute_request(correlation, body(file_server.href("scene.tif")))
    assert "tiles" not in TileSizer(None)(correlation, request).inputs
    assert not file_server.state.log  # nothing was asked of the server
