"""OGC API - Processes 1.0 JSON documents built from our typed records.

The job list (``jobList.yaml``), the conformance declaration, and the
corrections applied to pygeoapi's process list / description (whose
``jobControlOptions`` and ``outputTransmission`` are hard-wired and whose
links advertise formats we do not serve). The
status info of one job is built by :mod:`gateway.jobs.status` (re-exported
here with its link helpers), which the worker's callbacks share.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from gateway.jobs.records import SummaryPage
from gateway.jobs.status import HTML, JSON, REL_RESULTS, iso, link, status_info
from processes.definition import ProcessDefinition

__all__ = [
    "CONFORMANCE_CLASSES",
    "HTML",
    "JSON",
    "REL_EXECUTE",
    "REL_JOB_LIST",
    "REL_PROCESSES",
    "REL_RESULTS",
    "fix_landing_links",
    "fix_process",
    "iso",
    "job_list",
    "link",
    "process_list_links",
    "status_info",
]

REL_EXECUTE = "http://www.opengis.net/def/rel/ogc/1.0/execute"
REL_JOB_LIST = "http://www.opengis.net/def/rel/ogc/1.0/job-list"
REL_PROCESSES = "http://www.opengis.net/def/rel/ogc/1.0/processes"

_CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"
#: The requirement classes this server implements (and only those).
CONFORMANCE_CLASSES: tuple[str, ...] = tuple(
    _CONF + name
    for name in (
        "core",
        "ogc-process-description",
        "json",
        "html",
        "oas30",
        "job-list",
        "callback",
        "dismiss",
    )
) + tuple(
    # OGC API - Processes - Part 2: Deploy, Replace, Undeploy (draft OGC 20-044)
    "http://www.opengis.net/spec/ogcapi-processes-2/1.0/conf/" + name
    for name in ("deploy-replace-undeploy", "ogcapppkg", "cwl")
)


def job_list(
    page: SummaryPage, base_url: str, query: list[tuple[str, str]], fmt: str
) -> dict[str, Any]:
    """The job list document with ``self``/``alternate`` and, if more, ``next`` links.

    ``query`` is the request's query (minus ``f`` and ``next``) so links keep
    the same filters; ``next`` carries the store's opaque keyset cursor.
    """
    jobs_url = f"{base_url}/jobs"

    def href(extra: list[tuple[str, str]]) -> str:
        params = query + extra
        return f"{jobs_url}?{urlencode(params)}" if params else jobs_url

    json_rel, html_rel = ("alternate", "self") if fmt == "html" else ("self", "alternate")
    links = [
        link(href([("f", "json")]), json_rel, JSON, "This job list as JSON"),
        link(href([("f", "html")]), html_rel, HTML, "This job list as HTML"),
    ]
    if page.next_cursor:
        links.append(link(href([("next", page.next_cursor)]), "next", JSON, "Next page"))
    return {"jobs": [status_info(job, base_url) for job in page.jobs], "links": links}


def fix_process(doc: dict[str, Any], definition: ProcessDefinition, base_url: str) -> None:
    """Correct one pygeoapi process summary/description in place."""
    doc["jobControlOptions"] = list(definition.jobControlOptions)
    doc["outputTransmission"] = list(definition.outputTransmission)
    doc.pop("example", None)
    process_url = f"{base_url}/processes/{definition.id}"
    links = [
        lk
        for lk in doc.get("links", [])
        if lk.get("rel") not in (REL_EXECUTE, REL_JOB_LIST, "self", "alternate")
    ]
    doc["links"] = [
        link(process_url, "self", JSON, "Process description as JSON"),
        link(f"{process_url}?f=html", "alternate", HTML, "Process description as HTML"),
        link(f"{process_url}/execution", REL_EXECUTE, JSON, "Execute this process"),
        link(f"{base_url}/jobs", REL_JOB_LIST, JSON, "Jobs"),
        *links,
    ]


def process_list_links(base_url: str) -> list[dict[str, str]]:
    url = f"{base_url}/processes"
    return [
        link(url, "self", JSON, "This document as JSON"),
        link(f"{url}?f=html", "alternate", HTML, "This document as HTML"),
    ]


def fix_landing_links(links: list[dict[str, Any]], base_url: str) -> list[dict[str, Any]]:
    """Drop pygeoapi's links to resources we do not serve (collections, tiles, JSON-LD)."""
    dropped_rels = {"data", "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes"}
    kept = [
        lk
        for lk in links
        if lk.get("rel") not in dropped_rels
        and lk.get("type") != "application/ld+json"
        and lk.get("href")
    ]
    for lk in kept:
        if lk.get("rel") == REL_JOB_LIST:
            lk["href"] = f"{base_url}/jobs"
    return kept
