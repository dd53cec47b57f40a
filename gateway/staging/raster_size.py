"""The tile count of a tiled process from its image's size, read at submission.

A tiled process (``hpc.tiling`` with ``size_from``, see
:class:`processes.definition.Tiling`) runs one Slurm array task per
``tile_rows`` rows of the image input ``size_from``. When the client gives no
tile count, :class:`TileSizer` reads that image's size -- the raster header,
not the pixels -- and writes the tile count into the request's inputs before
the job is quoted or stored, so the quote, the stored job and the Slurm array
agree (and the job's inputs show the count it ran with).

Where the size comes from:

* ``file:///`` under an allowed root: the file's header (rasterio);
* ``http(s)``: the first :data:`HEADER_BYTES` of the file, one ranged ``GET``
  through the egress guard (every redirect hop checked), opened by rasterio
  in memory. A Cloud-Optimised GeoTIFF, and a GeoTIFF GDAL wrote, keep their
  header at the start; a file whose header lies further in is *unknown*;
* a STAC Item asset: its ``proj:shape`` (projection extension) when the Item
  gives one, else its href as above.

Anything else (``s3://``, a network error, a timeout, a file that is not a
raster) leaves the size unknown and the tile count at the process's default;
a bad image is then reported by the job itself, as before. Every request of
one submission (or quotation) shares the admission probe's wall-clock budget,
and with ``workflow.egress.probe_references`` off no http(s) image is read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from gateway.egress import EgressError, EgressPolicy
from gateway.settings_workflow import WorkflowSettings
from gateway.staging.base import StagingError
from gateway.staging.probe import ProbeLimits, ReferenceProbe
from gateway.staging.reference import Reference, is_reference, local_path
from gateway.staging.stac import find_asset

if TYPE_CHECKING:
    from gateway.jobs.execute_request import ExecuteRequest
    from processes.definition import ProcessDefinition

log = logging.getLogger(__name__)

#: How much of a remote image is read for its header.
HEADER_BYTES = 256 * 1024


@dataclass(frozen=True)
class RasterShape:
    """An image's size in pixels."""

    rows: int
    cols: int


def shape_of_header(data: bytes) -> RasterShape | None:
    """The size of the raster whose first bytes are ``data``; None if GDAL cannot tell."""
    # rasterio (GDAL, and boto3 through it: tens of MiB) is loaded by the first tiled
    # request, not by every API process at start
    from rasterio.errors import RasterioError
    from rasterio.io import MemoryFile

    try:
        with MemoryFile(data) as memfile, memfile.open() as dataset:
            return RasterShape(dataset.height, dataset.width)
    except RasterioError:
        return None


def shape_of_file(path: str) -> RasterShape | None:
    """The size of the raster file at ``path``; None if GDAL cannot read it."""
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(path) as dataset:
            return RasterShape(dataset.height, dataset.width)
    except RasterioError:
        return None


def _proj_shape(fields: dict[str, Any]) -> RasterShape | None:
    shape = fields.get("proj:shape")
    if isinstance(shape, list) and len(shape) == 2 and all(isinstance(v, int) for v in shape):
        return RasterShape(shape[0], shape[1])
    return None


class TileSizer:
    """Fills in a tiled process's tile count from its image's size (see the module doc)."""

    def __init__(self, probe: ReferenceProbe | None, local_roots: list[str] | None = None) -> None:
        self.probe = probe
        self.local_roots = list(local_roots or [])

    def __call__(self, process: ProcessDefinition, request: ExecuteRequest) -> ExecuteRequest:
        """``request`` with the tile count set, when the process sizes its tiles and the
        client gave none; unchanged otherwise (or when the size cannot be read)."""
        tiling = process.hpc.tiling
        if tiling is None or tiling.size_from is None or tiling.input in request.inputs:
            return request
        value = request.inputs.get(tiling.size_from)
        shape = self.shape(value) if isinstance(value, dict) and is_reference(value) else None
        if shape is None:
            return request
        tiles = tiling.tiles_for_rows(shape.rows)
        log.info(
            "%s: %s is %dx%d px: %d tile(s) of %d rows",
            process.id,
            tiling.size_from,
            shape.cols,
            shape.rows,
            tiles,
            tiling.tile_rows,
        )
        return replace(request, inputs={**request.inputs, tiling.input: tiles})

    def shape(self, value: dict[str, Any]) -> RasterShape | None:
        """The size of the image ``value`` references; None when it cannot be read now."""
        ref = Reference.parse(value)
        try:
            if ref.scheme == "file":
                return shape_of_file(str(local_path(ref.href, self.local_roots)))
            if ref.scheme not in ("http", "https") or self.probe is None:
                return None
            with self.probe.session() as session:
                href = ref.href
                if ref.is_stac:
                    item = session.stac_item(ref.href)
                    if item is None:
                        return None
                    selected = find_asset(item, ref)
                    asset = item.assets[selected.key]
                    known = _proj_shape(asset.extra_fields) or _proj_shape(item.properties)
                    if known is not None:
                        return known
                    href = selected.href
                if not href.lower().startswith(("http://", "https://")):
                    return None
                head = session.first_bytes(href, HEADER_BYTES)
            return shape_of_header(head) if head else None
        except (EgressError, StagingError) as exc:
            log.info("size of %s unknown at submission: %s", ref.href, exc)
            return None


def tile_sizer(settings: WorkflowSettings, policy: EgressPolicy) -> TileSizer:
    """The sizer the workflow settings describe: the admission probe's time limits, and
    no network read at all when ``workflow.egress.probe_references`` is off."""
    probe = None
    if settings.egress.probe_references:
        probe = ReferenceProbe(policy, ProbeLimits.from_settings(settings))
    return TileSizer(probe, settings.staging.local_roots)
