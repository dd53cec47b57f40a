"""The demo mirror's static STAC catalog, generated once and cached.

Layout of a mirror folder (every link relative, so the same files serve on any
host and port)::

    catalog.json
    demo-optical/collection.json
    demo-optical/<item id>/<item id>.json   # STAC Item (proj, eo extensions)
    demo-optical/<item id>/<item id>.tif    # its asset "image" (COG)
    demo-sar/...                            # the same (proj, sar extensions)

:func:`ensure_mirror` builds it in a temporary folder and renames it into
place, so a half-written mirror is never served and concurrent callers agree.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pystac
from pystac.extensions.eo import Band as EOBand
from pystac.extensions.eo import EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.sar import FrequencyBand, Polarization, SarExtension
from rasterio.warp import transform_bounds, transform_geom

from deploy.eo_mirror.scenes import EPSG, SIZE, Scene, make_scenes, write_cog

#: Bump when the scenes or the catalog change: a new cache folder is generated.
MIRROR_VERSION = 2
CATALOG_ID = "hpcgw-demo-mirror"
IMAGE_ASSET = "image"
_COLLECTIONS = {
    "demo-optical": "Synthetic 4-band optical scenes (B02, B03, B04, B08), a shifted pair",
    "demo-sar": "Synthetic SAR-like scenes (VV, VH linear backscatter), a changed pair",
}


def default_root() -> Path:
    """``$HPCGW_EO_MIRROR_DIR``, else ``~/.cache/hpcgw/eo-mirror/v<MIRROR_VERSION>``."""
    configured = os.environ.get("HPCGW_EO_MIRROR_DIR")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "hpcgw" / "eo-mirror" / f"v{MIRROR_VERSION}"


def item_path(item_id: str) -> str:
    """Path of an Item's JSON document below the mirror's root URL."""
    collection = item_id.rsplit("-", 1)[0]
    return f"{collection}/{item_id}/{item_id}.json"


def ensure_mirror(root: Path | None = None) -> Path:
    """The mirror folder, generated first if it does not exist yet; returns its path."""
    root = root or default_root()
    if (root / "catalog.json").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        write_catalog(staging)
        staging.chmod(0o755)
        try:
            staging.rename(root)
        except OSError:  # another process won the race: use its copy
            if not (root / "catalog.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def write_catalog(folder: Path) -> None:
    """Generate every scene and the STAC catalog describing them into ``folder``."""
    catalog = pystac.Catalog(
        CATALOG_ID,
        "Sample scenes of the ogc-hpc-gateway demo (synthetic, generated locally)",
        title="hpcgw demo EO mirror",
    )
    scenes = make_scenes()
    for collection_id, description in _COLLECTIONS.items():
        members = [s for s in scenes if s.collection == collection_id]
        collection = pystac.Collection(
            collection_id,
            description,
            extent=_extent(members),
            license="CC0-1.0",
        )
        for scene in members:
            collection.add_item(_item(scene))
        catalog.add_child(collection)
    catalog.normalize_hrefs(str(folder))
    for item in catalog.get_items(recursive=True):
        scene = next(s for s in scenes if s.id == item.id)
        cog = Path(item.get_self_href() or "").with_suffix(".tif")
        cog.parent.mkdir(parents=True, exist_ok=True)
        write_cog(scene, cog)
    catalog.save(pystac.CatalogType.SELF_CONTAINED)


def _footprint(scene: Scene) -> dict[str, object]:
    """The scene's footprint as a GeoJSON polygon in WGS84 (its corners reprojected)."""
    west, south, east, north = scene.bounds
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    geometry = transform_geom(
        f"EPSG:{EPSG}", "EPSG:4326", {"type": "Polygon", "coordinates": [ring]}
    )
    return dict(geometry)


def _extent(scenes: list[Scene]) -> pystac.Extent:
    west, south, east, north = transform_bounds(f"EPSG:{EPSG}", "EPSG:4326", *scenes[0].bounds)
    dates = sorted(s.datetime for s in scenes)
    return pystac.Extent(
        pystac.SpatialExtent([[west, south, east, north]]),
        pystac.TemporalExtent([[dates[0], dates[-1]]]),
    )


def _item(scene: Scene) -> pystac.Item:
    west, south, east, north = transform_bounds(f"EPSG:{EPSG}", "EPSG:4326", *scene.bounds)
    item = pystac.Item(
        scene.id,
        _footprint(scene),
        [west, south, east, north],
        scene.datetime,
        {"title": scene.title, **scene.truth},
    )
    asset = pystac.Asset(
        f"./{scene.id}.tif",
        title=f"{scene.title}: {', '.join(b.name for b in scene.bands)}",
        media_type=pystac.MediaType.COG,
        roles=["data"],
    )
    item.add_asset(IMAGE_ASSET, asset)
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.epsg = EPSG
    proj.shape = [SIZE, SIZE]
    proj.transform = list(scene.transform)[:6]
    proj.bbox = list(scene.bounds)
    if scene.collection == "demo-optical":
        eo = EOExtension.ext(asset, add_if_missing=True)
        eo.bands = [
            EOBand.create(
                name=b.name,
                common_name=b.common_name,
                description=b.description,
                center_wavelength=b.center_wavelength_um,
            )
            for b in scene.bands
        ]
    else:
        SarExtension.ext(item, add_if_missing=True).apply(
            instrument_mode="IW",
            frequency_band=FrequencyBand.C,
            polarizations=[Polarization(b.name) for b in scene.bands],
            product_type="GRD",
        )
    return item
