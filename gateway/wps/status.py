"""Job documents: WPS 1.0.0 ExecuteResponse, WPS 2.0.0 StatusInfo and Result.

All are rendered from the job row on every request, so the WPS 1.0.0
``statusLocation`` is always current (ProcessAccepted -> ProcessStarted with
percentCompleted -> ProcessSucceeded with outputs / ProcessFailed with an
ExceptionReport) and shows the same job the OGC API shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lxml import etree

from gateway.jobs.records import Job
from gateway.jobs.states import JobState
from gateway.wps.exceptions import NO_APPLICABLE, WpsError, exception_report
from gateway.wps.outputs import (
    data_1,
    data_2,
    input_type,
    is_reference,
    output_type,
    reference_1,
    reference_2,
)
from gateway.wps.xml import (
    O1,
    SCHEMA_LOCATIONS,
    W1,
    W2,
    WPS1,
    XML_NS,
    XSI,
    qn,
    safe_text,
    utc_timestamp,
)
from processes.definition import ProcessDefinition


def failure_text(job: Job) -> str:
    """Why a job did not succeed, for exception reports."""
    if job.state is JobState.DISMISSED:
        return job.message or "The job was dismissed."
    return str((job.error or {}).get("detail") or job.message or "The job failed.")


def _ordered_results(process: ProcessDefinition, job: Job) -> list[tuple[str, Any]]:
    results = job.results or {}
    known = [(k, results[k]) for k in process.outputs if k in results]
    return known + [(k, v) for k, v in results.items() if k not in process.outputs]


def _title(descs: dict[str, dict[str, Any]], io_id: str) -> str:
    return safe_text((descs.get(io_id) or {}).get("title") or io_id)


# -- WPS 1.0.0 ExecuteResponse ----------------------------------------------------------


def _status_1(job: Job) -> etree._Element:
    state = job.state.wps1
    message = safe_text(job.message or "")
    if state == "ProcessAccepted":
        child = W1.ProcessAccepted(message or "Process accepted")
    elif state == "ProcessStarted":
        child = W1.ProcessStarted(message or "Process started")
        if job.progress is not None:
            child.set("percentCompleted", str(max(0, min(99, int(job.progress)))))
    elif state == "ProcessSucceeded":
        child = W1.ProcessSucceeded(message or "Process succeeded")
    else:
        child = W1.ProcessFailed(
            exception_report([WpsError(NO_APPLICABLE, failure_text(job))], "1.0.0")
        )
    return W1.Status(child, creationTime=utc_timestamp())


def _lineage_1(process: ProcessDefinition, job: Job) -> list[etree._Element]:
    inputs = []
    for io_id, value in job.inputs.items():
        for one in value if isinstance(value, list) else [value]:
            body = (
                reference_1(one, xlink=True)
                if is_reference(one)
                else data_1(input_type(process, io_id), one)
            )
            inputs.append(
                W1.Input(O1.Identifier(io_id), O1.Title(_title(process.inputs, io_id)), body)
            )
    definitions = []
    for io_id, options in (job.outputs_request or {}).items():
        as_ref = (options or {}).get("transmissionMode") == "reference"
        definitions.append(
            W1.Output(O1.Identifier(io_id), asReference="true" if as_ref else "false")
        )
    lineage: list[etree._Element] = []
    if inputs:
        lineage.append(W1.DataInputs(*inputs))
    if definitions:
        lineage.append(W1.OutputDefinitions(*definitions))
    return lineage


def execute_response_1(
    process: ProcessDefinition,
    job: Job,
    *,
    service_instance: str,
    status_location: str | None,
    lineage: bool = False,
) -> etree._Element:
    """The WPS 1.0.0 ``wps:ExecuteResponse`` of ``job`` as it stands now."""
    brief = W1.Process(O1.Identifier(process.id), O1.Title(safe_text(process.title)))
    brief.set(qn(WPS1, "processVersion"), process.version)
    doc = W1.ExecuteResponse(
        brief,
        _status_1(job),
        {
            "service": "WPS",
            "version": "1.0.0",
            qn(XML_NS, "lang"): "en-US",
            "serviceInstance": service_instance,
        },
    )
    if status_location:
        doc.set("statusLocation", status_location)
    if lineage:
        doc.extend(_lineage_1(process, job))
    if job.state is JobState.SUCCESSFUL and job.results:
        outputs = []
        for io_id, value in _ordered_results(process, job):
            body = (
                reference_1(value, xlink=False)
                if is_reference(value)
                else data_1(output_type(process, io_id), value)
            )
            outputs.append(
                W1.Output(O1.Identifier(io_id), O1.Title(_title(process.outputs, io_id)), body)
            )
        doc.append(W1.ProcessOutputs(*outputs))
    doc.set(qn(XSI, "schemaLocation"), SCHEMA_LOCATIONS["execute1"])
    return doc


# -- WPS 2.0.0 StatusInfo / Result ------------------------------------------------------


def status_info(job: Job) -> etree._Element:
    """WPS 2.0.0 ``wps:StatusInfo`` (GetStatus, async Execute, Dismiss)."""
    doc = W2.StatusInfo(W2.JobID(job.id), W2.Status(job.state.wps2))
    if not job.final and job.progress is not None:
        doc.append(W2.PercentCompleted(str(max(0, min(100, int(job.progress))))))
    doc.set(qn(XSI, "schemaLocation"), SCHEMA_LOCATIONS["wps2"])
    return doc


def result_2(process: ProcessDefinition, job: Job, only: Sequence[str] = ()) -> etree._Element:
    """WPS 2.0.0 ``wps:Result`` of a successful job (optionally only some outputs)."""
    outputs = []
    for io_id, value in _ordered_results(process, job):
        if only and io_id not in only:
            continue
        body = (
            reference_2(value)
            if is_reference(value)
            else data_2(output_type(process, io_id), value)
        )
        outputs.append(W2.Output(body, id=io_id))
    if not outputs:
        raise WpsError(NO_APPLICABLE, f"job '{job.id}' produced no outputs")
    doc = W2.Result(W2.JobID(job.id), *outputs)
    doc.set(qn(XSI, "schemaLocation"), SCHEMA_LOCATIONS["wps2"])
    return doc
