"""The status of a job as a document (OGC ``statusInfo.yaml``), protocol-neutral.

Built from a :class:`~gateway.jobs.records.Job` or a
:class:`~gateway.jobs.records.JobSummary` with nothing but the public base
URL: no Flask, no pygeoapi. The OGC API job routes, the job list and the
worker's callbacks (:mod:`gateway.workflow.callbacks`) all send this same
document, so a subscriber receives exactly what ``GET /jobs/{id}`` returns.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.jobs.extra import submitted_via
from gateway.jobs.records import Job, JobSummary
from gateway.jobs.states import JobState

REL_RESULTS = "http://www.opengis.net/def/rel/ogc/1.0/results"
JSON = "application/json"
HTML = "text/html"


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
    ``describedby`` its STAC Item while published); ``related`` to the trigger
    that started it, if one did; ``up`` to the job list.
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
    origin = job.extra.get("trigger") if isinstance(job, Job) else None
    if isinstance(origin, dict) and origin.get("id"):
        title = "The trigger that started this job"
        links.append(link(f"{base_url}/triggers/{origin['id']}", "related", JSON, title))
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
    via = submitted_via(job.extra) if isinstance(job, Job) else None
    if via is not None:
        # extension: the portal that submitted on the owner's behalf
        doc["submittedVia"] = via
    # extension: where the job runs and why (docs/federation.md)
    doc["hpcSite"] = job.site
    if job.routing_reason is not None:
        doc["routingReason"] = job.routing_reason
    if isinstance(origin, dict):
        # extension: the trigger and event that started it (docs/triggers.md)
        doc["trigger"] = {"id": origin.get("id"), "eventId": origin.get("eventId")}
    waiting = job.extra.get("awaiting_input") if isinstance(job, Job) else None
    if isinstance(waiting, dict) and not state.final:
        # extension: an input is on tape; the job waits in the gateway (docs/workflow.md)
        doc["waitingForInput"] = {"since": waiting.get("since"), "tries": waiting.get("tries")}
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
