"""STAC Items (one per successful job) and the per-user STAC Catalog of published results.

Items are built from the job record when asked for, so they always say what
the job record knows: assets are the published output files (media type,
size, sha256 recorded at publication; outputs published to S3 link straight
to the object, by its public URL or a pre-signed URL made when the Item is
asked for), provenance is the process id and
version, the inputs (with their staged checksums and STAC sources), the
Slurm job id, the site and -- once accounting has read it from Slurm -- the
core-hours. Besides core STAC 1.1.0 fields and ``hpcgw:``-prefixed
properties, assets carry three extensions (declared in ``stac_extensions``
only when used): ``file`` (``file:size``, ``file:checksum`` as a sha2-256
multihash), and for rasters ``projection`` v2 (``proj:code`` or
``proj:wkt2``, ``proj:shape``, ``proj:transform``) and ``raster`` v1.1
(``raster:bands``: data type, nodata, approximate statistics), from the facts
the publisher recorded (:mod:`gateway.publication.raster_facts`).
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.jobs.records import Job

log = logging.getLogger(__name__)

STAC_VERSION = "1.1.0"
GEOJSON = "application/geo+json"
JSON = "application/json"
CATALOG_ID = "hpcgw-results"
REL_RESULTS = "http://www.opengis.net/def/rel/ogc/1.0/results"
_PROVIDER = "OGC HPC Gateway"
FILE_EXT = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
PROJ_EXT = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
RASTER_EXT = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
#: multihash prefix of a sha2-256 digest (code 0x12, length 0x20)
_SHA256_MULTIHASH = "1220"

#: The direct link of one published output of a job and when it expires (None: never),
#: or None to keep the results href (see ``Publisher.asset_link``).
AssetLink = Callable[[Job, str], tuple[str, datetime | None] | None]


def iso(value: datetime | None) -> str | None:
    """RFC 3339 UTC timestamp (``...Z``) or None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def catalog_url(base_url: str) -> str:
    return f"{base_url}/stac/catalog.json"


def item_url(base_url: str, job_id: str) -> str:
    return f"{base_url}/stac/items/{job_id}.json"


def _roles(media_type: str | None) -> list[str]:
    media = (media_type or "").lower()
    if media.startswith(("image/png", "image/jpeg", "image/webp")):
        return ["overview"]
    if media.startswith(("application/json", "text/")):
        return ["metadata"]
    return ["data"]


def result_links(results: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(asset key, link)`` of every published file of a job: an output's own link
    (key: the output), or each link of an output that is a list of them -- a CWL
    ``Directory`` output's STAC assets (key: the file name without extension)."""
    for name, value in results.items():
        if isinstance(value, dict) and isinstance(value.get("href"), str):
            yield name, value
        elif isinstance(value, list):
            for link in value:
                if isinstance(link, dict) and isinstance(link.get("href"), str):
                    yield posixpath.splitext(link["href"].rsplit("/", 1)[-1])[0], link


def _is_linked(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(_is_linked(v) for v in value)
    return isinstance(value, dict) and isinstance(value.get("href"), str)


def _bbox_polygon(bbox: list[float]) -> dict[str, Any]:
    west, south, east, north = bbox
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def _inputs(job: Job) -> dict[str, Any]:
    """The job's inputs, references annotated with what was staged (checksums, STAC asset)."""
    staged = job.extra.get("staged_inputs", {})
    out: dict[str, Any] = {}
    for name, value in job.inputs.items():
        if isinstance(value, dict) and "href" in value and name in staged:
            out[name] = {**value, **{k: v for k, v in staged[name].items() if k != "path"}}
        else:
            out[name] = value
    return out


def _derived_from(job: Job) -> list[dict[str, str]]:
    links = []
    for record in job.extra.get("staged_inputs", {}).values():
        stac = record.get("stac") if isinstance(record, dict) else None
        if isinstance(stac, dict) and isinstance(stac.get("item"), str):
            links.append({"rel": "derived_from", "href": stac["item"], "type": GEOJSON})
    return links


def _asset_extensions(fact: dict[str, Any]) -> dict[str, Any]:
    """The file, projection and raster extension fields of one published file."""
    fields: dict[str, Any] = {}
    if isinstance(fact.get("size"), int):
        fields["file:size"] = fact["size"]
    if fact.get("sha256"):
        fields["file:checksum"] = _SHA256_MULTIHASH + fact["sha256"]
    raster = fact.get("raster")
    if isinstance(raster, dict):
        for key in ("code", "wkt2", "shape", "transform"):
            if key in raster:
                fields[f"proj:{key}"] = raster[key]
        if "code" not in raster:
            fields["proj:code"] = None  # projection v2: a CRS without an EPSG code
        if raster.get("bands"):
            fields["raster:bands"] = raster["bands"]
    return fields


def _extensions_used(assets: dict[str, Any]) -> list[str]:
    keys = {key.split(":", 1)[0] for asset in assets.values() for key in asset}
    schemas = {"file": FILE_EXT, "proj": PROJ_EXT, "raster": RASTER_EXT}
    return [uri for prefix, uri in schemas.items() if prefix in keys]


def has_item(job: Job) -> bool:
    """True when the job has published results that have not expired."""
    publication = job.extra.get("publication")
    return isinstance(publication, dict) and not publication.get("expired")


def job_item(
    job: Job,
    base_url: str,
    core_hours: float | None = None,
    asset_link: AssetLink | None = None,
) -> dict[str, Any]:
    """The STAC Item describing ``job``'s published results.

    ``asset_link`` gives the href of outputs stored elsewhere than the gateway
    (S3); a pre-signed href carries its expiry as ``hpcgw:expires``.
    """
    publication: dict[str, Any] = job.extra.get("publication", {})
    files: dict[str, Any] = publication.get("files", {})
    assets: dict[str, Any] = {}
    results = job.results or {}
    values = {name: value for name, value in results.items() if not _is_linked(value)}
    for name, value in result_links(results):
        fact = files.get(name, {})
        direct = asset_link(job, name) if asset_link else None
        asset: dict[str, Any] = {
            "href": direct[0] if direct else value["href"],
            "title": name,
            "roles": _roles(value.get("type")),
        }
        if direct and direct[1] is not None:
            asset["hpcgw:expires"] = iso(direct[1])
        if value.get("type"):
            asset["type"] = value["type"]
        asset.update(_asset_extensions(fact))
        assets[name] = asset
    when: datetime = job.finished or job.updated
    properties: dict[str, Any] = {
        "title": f"{job.process_id} job {job.id}",
        "datetime": iso(when),
        "created": publication.get("published") or iso(when),
        "updated": iso(job.updated),
        "providers": [{"name": _PROVIDER, "roles": ["processor", "host"], "url": base_url}],
        "hpcgw:process_id": job.process_id,
        "hpcgw:process_version": job.process_version,
        "hpcgw:site": job.site,
        "hpcgw:inputs": _inputs(job),
    }
    if job.started and job.finished:
        properties["start_datetime"] = iso(job.started)
        properties["end_datetime"] = iso(job.finished)
    if job.scheduler_job_id:
        properties["hpcgw:slurm_job_id"] = job.scheduler_job_id
    if core_hours is not None:
        properties["hpcgw:core_hours"] = round(core_hours, 6)
    if values:
        properties["hpcgw:values"] = values
    bbox = publication.get("bbox")
    item: dict[str, Any] = {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": _extensions_used(assets),
        "id": job.id,
        "geometry": _bbox_polygon(bbox) if bbox else None,
        "properties": properties,
        "links": [
            {"rel": "self", "href": item_url(base_url, job.id), "type": GEOJSON},
            {"rel": "root", "href": catalog_url(base_url), "type": JSON},
            {"rel": "parent", "href": catalog_url(base_url), "type": JSON},
            {
                "rel": "related",
                "href": f"{base_url}/jobs/{job.id}",
                "type": JSON,
                "title": "OGC API - Processes job status",
            },
            {
                "rel": REL_RESULTS,
                "href": f"{base_url}/jobs/{job.id}/results",
                "type": JSON,
                "title": "OGC API - Processes results",
            },
            *_derived_from(job),
        ],
        "assets": assets,
    }
    if bbox:
        item["bbox"] = list(bbox)
    return item


def catalog(base_url: str, jobs: list[Job], next_href: str | None = None) -> dict[str, Any]:
    """The catalog of the caller's published results (one ``item`` link per job)."""
    links: list[dict[str, Any]] = [
        {"rel": "self", "href": catalog_url(base_url), "type": JSON},
        {"rel": "root", "href": catalog_url(base_url), "type": JSON},
    ]
    for job in jobs:
        links.append(
            {
                "rel": "item",
                "href": item_url(base_url, job.id),
                "type": GEOJSON,
                "title": f"{job.process_id} job {job.id}",
            }
        )
    if next_href:
        links.append({"rel": "next", "href": next_href, "type": JSON})
    return {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": CATALOG_ID,
        "title": "Published results",
        "description": "Results of your successful jobs, published by the OGC HPC Gateway.",
        "links": links,
    }


_usage = sa.table("accounting_usage", sa.column("job_id"), sa.column("core_hours"))


def recorded_core_hours(engine: Engine, job_id: str) -> float | None:
    """Core-hours of ``job_id`` from the accounting usage records, if any are kept."""
    query = sa.select(_usage.c.core_hours).where(_usage.c.job_id == job_id)
    try:
        with engine.connect() as conn:
            value = conn.execute(query).scalar_one_or_none()
    except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
        log.debug("no accounting usage records: %s", exc)
        return None
    return float(value) if value is not None else None
