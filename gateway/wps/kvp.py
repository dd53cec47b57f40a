"""KVP (query string) requests: WPS 1.0.0 and 2.0.0 over HTTP GET.

Parameter names are case-insensitive (OWS Common); values are not, except
that ``service=wps`` is tolerated. WPS 1.0.0 Execute encodes inputs as
``DataInputs=id=value@attr=v;id2=@xlink:href=url`` with each part
URL-encoded (OGC 05-007r7, 10.2.2.1). WPS 2.0.0 defines no KVP Execute.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote

from gateway.wps.exceptions import NOT_SUPPORTED, WpsError, invalid, missing
from gateway.wps.model import (
    SUPPORTED_VERSIONS,
    DescribeProcess,
    Execute,
    GetCapabilities,
    InputValue,
    JobRequest,
    OutputRequest,
    WpsRequest,
)

OPERATIONS = ("GetCapabilities", "DescribeProcess", "Execute", "GetStatus", "GetResult", "Dismiss")
JOB_OPERATIONS = ("GetStatus", "GetResult", "Dismiss")
_TRUE = ("true", "1")
_FALSE = ("false", "0")


def normalise(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-cased parameter names; the first occurrence of a name wins."""
    params: dict[str, str] = {}
    for key, value in pairs:
        params.setdefault(key.lower(), value)
    return params


def requested_version(params: dict[str, str]) -> str:
    """The version errors should be reported in (best effort, before validation)."""
    version = params.get("version", "")
    if not version and params.get("acceptversions"):
        version = params["acceptversions"].split(",")[0].strip()
    return "2.0.0" if version.startswith("2") else "1.0.0"


def operation_name(value: str) -> str:
    """Canonical operation name, or OperationNotSupported."""
    for op in OPERATIONS:
        if op.lower() == value.lower():
            return op
    raise WpsError(NOT_SUPPORTED, f"operation '{value}' is not supported", locator=value)


def check_service(service: str | None) -> None:
    if not service:
        raise missing("service")
    if service.upper() != "WPS":
        raise invalid("service", f"service must be 'WPS', got '{service}'")


def check_version(op: str, version: str | None) -> str:
    """The request version of a non-GetCapabilities operation."""
    if not version:
        raise missing("version")
    if version not in SUPPORTED_VERSIONS:
        raise invalid(
            "version",
            f"version '{version}' is not supported; use one of {', '.join(SUPPORTED_VERSIONS)}",
        )
    if op in JOB_OPERATIONS and version == "1.0.0":
        raise WpsError(NOT_SUPPORTED, f"{op} is a WPS 2.0.0 operation", locator=op)
    return version


def parse_bool(name: str, value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise invalid(name, f"{name} must be true or false, got '{value}'")


def parse_kvp(pairs: Iterable[tuple[str, str]]) -> WpsRequest:
    """Parse a KVP request into a typed request, or raise :class:`WpsError`."""
    params = normalise(pairs)
    check_service(params.get("service"))
    if not params.get("request"):
        raise missing("request")
    op = operation_name(params["request"])
    if op == "GetCapabilities":
        accept = tuple(v.strip() for v in params.get("acceptversions", "").split(",") if v.strip())
        return GetCapabilities(accept_versions=accept, version=params.get("version") or None)
    version = check_version(op, params.get("version"))
    if op == "DescribeProcess":
        ids = tuple(i.strip() for i in params.get("identifier", "").split(",") if i.strip())
        if not ids:
            raise missing("identifier")
        return DescribeProcess(version=version, identifiers=ids)
    if op in JOB_OPERATIONS:
        job_id = params.get("jobid", "").strip()
        if not job_id:
            raise missing("jobId")
        return JobRequest(operation=op, version=version, job_id=job_id)
    if version != "1.0.0":
        raise WpsError(
            NOT_SUPPORTED, "WPS 2.0.0 Execute is only offered as XML over POST", locator="Execute"
        )
    return _execute1(params)


def _execute1(params: dict[str, str]) -> Execute:
    identifier = params.get("identifier", "").strip()
    if not identifier:
        raise missing("identifier")
    raw = params.get("rawdataoutput")
    document = params.get("responsedocument")
    if raw and document:
        raise invalid("RawDataOutput", "give either ResponseDocument or RawDataOutput, not both")
    store = parse_bool("storeExecuteResponse", params.get("storeexecuteresponse"))
    status = parse_bool("status", params.get("status"))
    outputs = _outputs(raw or document or "", raw_mode=bool(raw))
    if raw and len(outputs) != 1:
        raise invalid("RawDataOutput", "RawDataOutput names exactly one output")
    return Execute(
        version="1.0.0",
        identifier=identifier,
        inputs=_data_inputs(params.get("datainputs", "")),
        outputs=tuple(outputs),
        response="raw" if raw else "document",
        mode="async" if store and not raw else "sync",
        status=status,
        lineage=parse_bool("lineage", params.get("lineage")),
    )


def _attributes(parts: list[str], where: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise invalid(where, f"malformed attribute '{unquote(part)}' in {where}")
        attrs[unquote(key).lower()] = unquote(value)
    return attrs


def _data_inputs(value: str) -> tuple[InputValue, ...]:
    inputs: list[InputValue] = []
    for item in value.split(";"):
        if not item.strip():
            continue
        name, sep, rest = item.partition("=")
        name = unquote(name).strip()
        if not sep or not name:
            raise invalid("DataInputs", f"malformed input '{unquote(item)}': expected id=value")
        text, *attr_parts = rest.split("@")
        attrs = _attributes(attr_parts, "DataInputs")
        href = attrs.get("xlink:href") or attrs.get("href")
        inputs.append(
            InputValue(
                identifier=name,
                text=None if href else unquote(text),
                href=href or None,
                mime_type=attrs.get("mimetype"),
                data_type=attrs.get("datatype"),
            )
        )
    return tuple(inputs)


def _outputs(value: str, *, raw_mode: bool) -> list[OutputRequest]:
    outputs: list[OutputRequest] = []
    where = "RawDataOutput" if raw_mode else "ResponseDocument"
    for item in value.split(";"):
        if not item.strip():
            continue
        name, *attr_parts = item.split("@")
        name = unquote(name).strip()
        if not name:
            raise invalid(where, f"malformed output '{unquote(item)}'")
        attrs = _attributes(attr_parts, where)
        as_ref = attrs.get("asreference")
        outputs.append(
            OutputRequest(
                identifier=name,
                as_reference=None if as_ref is None else parse_bool("asReference", as_ref),
                mime_type=attrs.get("mimetype"),
            )
        )
    return outputs
