"""OGC API - Processes 1.0 JSON documents built from our typed records.

Status info (``statusInfo.yaml``), the job list (``jobList.yaml``), the
conformance declaration, and the corrections applied to pygeoapi's process
list / description (whose ``jobControlOptions`` and ``outputTransmission``
are hard-wired and whose links advertise formats we do not serve).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from gateway.jobs.records import Job, JobSummary, SummaryPage
from gateway.jobs.states import JobState
from processes.definition import ProcessDefinition

REL_RESULTS = "http://www.opengis.net/def/rel/ogc/1.0/results"
REL_EXECUTE = "http://www.opengis.net/def/rel/ogc/1.0/execute"
REL_JOB_LIST = "http://www.opengis.net/def/rel/ogc/1.0/job-list"
REL_PROCESSES = "http://www.opengis.net/def/rel/ogc/1.0/processes"
JSON = "application/json"
HTML = "text/html"

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
)


def iso(value: datetime | None) -> str | None:
    """RFC 3339 UTC timestamp to the millisecond (``...Z``), truncated, or None.

    The job store returns UTC datetimes; the common case is one C call.
    """
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"


def link(href: str, rel: str, type_: str | None = None, title: str | None = None) -> dict[str, str]:
    doc = {"href": href, "rel": rel}
    if type_:
        doc["type"] = type_
    if title:
        doc["title"] = title
    return doc


def status_info(
    job: Job | JobSummary, base_url: str, *, message: str | None = None
) -> dict[str, Any]:
    """The OGC status info of ``job`` (``statusInfo.yaml``), with its links.

    Links: ``self`` (JSON) and ``alternate`` (HTML); ``monitor`` while the job
    is still active (what a client polls); ``results`` once successful (and
    ``describedby`` its STAC Item while published); ``up`` to the job list.
    Built the same from a full :class:`Job` or a :class:`JobSummary` (job list).
    """
    job_url = f"{base_url}/jobs/{job.id}"
    links = [
        {"href": job_url, "rel": "self", "type": JSON, "title": "Job status as JSON"},
        {
            "href": job_url + "?f=html",
            "rel": "alternate",
            "type": HTML,
            "title": "Job status as HTML",
        },
    ]
    state = job.state
    if not state.final:
        links.append(
            {"href": job_url, "rel": "monitor", "type": JSON, "title": "Poll this job's status"}
        )
    elif state is JobState.SUCCESSFUL:
        results_type = JSON if job.response == "document" else None
        links.append(link(f"{job_url}/results", REL_RESULTS, results_type, "Job results"))
        if job.published:
            stac = f"{base_url}/stac/items/{job.id}.json"
            links.append(link(stac, "describedby", "application/geo+json", "STAC Item of results"))
    links.append({"href": f"{base_url}/jobs", "rel": "up", "type": JSON, "title": "The job list"})
    created, started, finished, updated = _times(job)
    doc: dict[str, Any] = {
        "jobID": job.id,
        "processID": job.process_id,
        "type": "process",
        "status": state.ogc,
        "message": message or job.message or "",
        "created": created,
    }
    # optional members are left out rather than null (statusInfo.yaml has no nulls)
    if started is not None:
        doc["started"] = started
    if finished is not None:
        doc["finished"] = finished
    doc["updated"] = updated
    doc["progress"] = _progress(job)
    if job.scheduler_job_id is not None:
        # extension: the Slurm job id, for users and HPC support staff
        doc["slurmJobId"] = job.scheduler_job_id
    doc["links"] = links
    return doc


def _times(job: Job | JobSummary) -> tuple[str | None, str | None, str | None, str | None]:
    """created, started, finished, updated as RFC 3339 text (a summary has them already)."""
    if isinstance(job, JobSummary):
        return job.created_text, job.started_text, job.finished_text, job.updated_text
    return iso(job.created), iso(job.started), iso(job.finished), iso(job.updated)


def _progress(job: Job | JobSummary) -> int:
    if job.state is JobState.SUCCESSFUL:
        return 100
    value = job.progress or 0
    return max(0, min(100, int(value)))


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
