"""The demo's EO mirror: its scenes and their truths, its STAC catalog, its loopback-only
server, and the demo configuration's egress rules (that mirror, nothing else on loopback)."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pystac
import pytest
import rasterio
import yaml

from deploy.eo_mirror.__main__ import main as mirror_cli
from deploy.eo_mirror.__main__ import mirror_urls
from deploy.eo_mirror.catalog import IMAGE_ASSET, ensure_mirror
from deploy.eo_mirror.scenes import OPTICAL_SHIFT, SAR_CHANGE_DB, SAR_CHANGE_WINDOW
from deploy.eo_mirror.server import DEFAULT_PORT, MirrorServer, NotLoopback
from gateway.egress import EgressPolicy, EgressRefused
from gateway.settings_workflow import EgressSettings
from tests.conftest import REPO

pytestmark = pytest.mark.unit

MIRROR = f"http://127.0.0.1:{DEFAULT_PORT}"


@pytest.fixture(scope="module")
def mirror_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_mirror(tmp_path_factory.mktemp("eo-mirror") / "v1")


def read(root: Path, item_id: str) -> np.ndarray:
    collection = item_id.rsplit("-", 1)[0]
    with rasterio.open(root / collection / item_id / f"{item_id}.tif") as src:
        assert src.crs.to_epsg() == 32631 and src.res == (10.0, 10.0)
        return src.read().astype(np.float64)


def test_catalog_lists_four_items_with_footprints_and_cog_assets(mirror_root: Path) -> None:
    catalog = pystac.Catalog.from_file(str(mirror_root / "catalog.json"))
    items = {item.id: item for item in catalog.get_items(recursive=True)}
    assert sorted(items) == [
        "demo-optical-20260601",
        "demo-optical-20260611",
        "demo-sar-20260603",
        "demo-sar-20260615",
    ]
    for item in items.values():
        west, south, east, north = item.bbox or []
        assert 1.3 < west < east < 1.5 and 43.5 < south < north < 43.7  # near Toulouse
        asset = item.assets[IMAGE_ASSET]
        assert asset.media_type == pystac.MediaType.COG
        with rasterio.open(asset.get_absolute_href()) as src:
            assert src.count == (4 if "optical" in item.id else 2)
            assert src.overviews(1)  # cloud-optimized: tiled with overviews
    assert items["demo-optical-20260611"].properties["demo:shift_px"] == {"x": 3, "y": 2}


def test_optical_pair_is_shifted_by_the_known_offset(mirror_root: Path) -> None:
    first = read(mirror_root, "demo-optical-20260601")[3]  # NIR
    second = read(mirror_root, "demo-optical-20260611")[3]
    dx, dy = OPTICAL_SHIFT
    errors = {
        (sx, sy): np.abs(
            second[10 + sy : 240 + sy, 10 + sx : 240 + sx] - first[10:240, 10:240]
        ).mean()
        for sx in range(-4, 5)
        for sy in range(-4, 5)
    }
    assert min(errors, key=errors.__getitem__) == (dx, dy)


def test_sar_pair_changes_in_the_known_window_only(mirror_root: Path) -> None:
    first = read(mirror_root, "demo-sar-20260603")[0]  # VV
    second = read(mirror_root, "demo-sar-20260615")[0]
    r0, c0, h, w = SAR_CHANGE_WINDOW
    inside = np.zeros(first.shape, dtype=bool)
    inside[r0 : r0 + h, c0 : c0 + w] = True
    ratio_in = 10 * np.log10(second[inside].mean() / first[inside].mean())
    ratio_out = 10 * np.log10(second[~inside].mean() / first[~inside].mean())
    assert ratio_in == pytest.approx(SAR_CHANGE_DB, abs=0.5)
    assert ratio_out == pytest.approx(0.0, abs=0.5)


def test_ndvi_scene_has_vegetation_and_water(mirror_root: Path) -> None:
    red, nir = read(mirror_root, "demo-optical-20260601")[2:4]
    ndvi = (nir - red) / (nir + red)
    assert ndvi.max() > 0.6 and ndvi.min() < 0.0


def test_generated_once(mirror_root: Path) -> None:
    stamp = (mirror_root / "catalog.json").stat().st_mtime_ns
    assert ensure_mirror(mirror_root) == mirror_root
    assert (mirror_root / "catalog.json").stat().st_mtime_ns == stamp


def test_server_serves_files_not_listings(mirror_root: Path) -> None:
    server = MirrorServer(mirror_root).start()
    try:
        urls = mirror_urls(server.url)
        assert httpx.get(urls["catalog"]).json()["id"] == "hpcgw-demo-mirror"
        assert httpx.get(urls["ndvi_item"]).json()["type"] == "Feature"
        head = httpx.head(urls["ndvi_image"])
        assert head.status_code == 200 and int(head.headers["content-length"]) > 10_000
        assert httpx.get(f"{server.url}/demo-optical/").status_code == 404
    finally:
        server.stop()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "localhost", "example.org"])
def test_mirror_listens_on_loopback_only(host: str, tmp_path: Path) -> None:
    with pytest.raises(NotLoopback, match="loopback only"):
        MirrorServer(tmp_path, host)
    assert mirror_cli(["serve", "--host", host, "--dir", str(tmp_path / "m")]) == 2
    assert not (tmp_path / "m").exists()  # refused before generating anything


@pytest.mark.parametrize("config", ["demo.yaml", "demo-ssh.yaml"])
def test_demo_egress_allows_the_mirror_and_nothing_else_on_loopback(config: str) -> None:
    data = yaml.safe_load((REPO / "deploy" / "config" / config).read_text())
    policy = EgressPolicy.from_settings(EgressSettings(**data["workflow"]["egress"]))
    for url in mirror_urls(MIRROR).values():
        policy.check_url(url)
    for other in (
        "http://127.0.0.1:5000/jobs",  # the gateway itself
        "http://127.0.0.1:8180/realms/gep",  # the identity provider
        "http://127.0.0.1:6820/openapi/v3",  # slurmrestd
        "http://127.0.0.1:8191/catalog.json",  # the port next door
        "http://127.0.0.1/catalog.json",
        "https://127.0.0.1:8190/catalog.json",
        "http://127.0.0.2:8190/catalog.json",
        "http://[::1]:8190/catalog.json",
        "http://169.254.169.254/latest/meta-data/",
    ):
        with pytest.raises(EgressRefused):
            policy.check_url(other)
