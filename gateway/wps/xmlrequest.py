"""XML (POST) requests of WPS 1.0.0 and 2.0.0 into typed requests.

The root element's namespace selects the version; the ``version`` attribute
must agree with it. Inputs keep their raw text (or serialised XML markup for
ComplexData) -- typing against the process description happens later, in
:mod:`gateway.wps.datatypes`.
"""

from __future__ import annotations

import math
from copy import deepcopy

from lxml import etree

from gateway.wps.exceptions import (
    NOT_SUPPORTED,
    OPTION_NOT_SUPPORTED,
    WpsError,
    invalid,
    missing,
)
from gateway.wps.kvp import JOB_OPERATIONS, OPERATIONS, check_service, parse_bool
from gateway.wps.model import (
    DescribeProcess,
    Execute,
    GetCapabilities,
    InputValue,
    JobRequest,
    OutputRequest,
    WpsRequest,
)
from gateway.wps.xml import (
    OWS2,
    OWS11,
    WPS1,
    WPS2,
    XLINK,
    element_text,
    local_name,
    namespace_of,
    qn,
)

_VERSION_OF = {WPS1: "1.0.0", WPS2: "2.0.0"}


def xml_version(root: etree._Element) -> str:
    """The WPS version of a request document (for error reports)."""
    return _VERSION_OF.get(namespace_of(root) or "", "1.0.0")


def parse_xml_request(root: etree._Element) -> WpsRequest:
    """Parse a WPS request document, or raise :class:`WpsError`."""
    ns = namespace_of(root) or ""
    name = local_name(root)
    if ns not in _VERSION_OF:
        raise invalid("request", f"'{name}' is not a WPS request (namespace '{ns}')")
    if name not in OPERATIONS:
        raise WpsError(NOT_SUPPORTED, f"operation '{name}' is not supported", locator=name)
    check_service(root.get("service"))
    expected = _VERSION_OF[ns]
    if name == "GetCapabilities":
        versions = [
            element_text(v) or ""
            for accept in root
            if isinstance(accept.tag, str) and local_name(accept) == "AcceptVersions"
            for v in accept
            if isinstance(v.tag, str) and local_name(v) == "Version"
        ]
        return GetCapabilities(accept_versions=tuple(versions), version=expected)
    version = root.get("version")
    if not version:
        raise missing("version")
    if version != expected:
        raise invalid("version", f"version '{version}' does not match the namespace '{ns}'")
    if name in JOB_OPERATIONS:
        if ns == WPS1:
            raise WpsError(NOT_SUPPORTED, f"{name} is a WPS 2.0.0 operation", locator=name)
        job_id = element_text(root.find(qn(WPS2, "JobID")))
        if not job_id:
            raise missing("JobID")
        return JobRequest(operation=name, version=version, job_id=job_id)
    ows = OWS11 if ns == WPS1 else OWS2
    if name == "DescribeProcess":
        ids = tuple(t for t in (element_text(e) for e in root.findall(qn(ows, "Identifier"))) if t)
        if not ids:
            raise missing("Identifier")
        return DescribeProcess(version=version, identifiers=ids)
    identifier = element_text(root.find(qn(ows, "Identifier")))
    if not identifier:
        raise missing("Identifier")
    if ns == WPS1:
        return _execute1(root, identifier)
    return _execute2(root, identifier)


# -- content helpers -----------------------------------------------------------


def _children(element: etree._Element) -> list[etree._Element]:
    return [c for c in element if isinstance(c.tag, str)]


def _serialise(element: etree._Element) -> str:
    """Markup of an element without the request's unused namespace declarations."""
    copy = deepcopy(element)
    copy.tail = None
    etree.cleanup_namespaces(copy)
    return etree.tostring(copy, encoding="unicode")


def _content(element: etree._Element) -> tuple[str, bool]:
    """Inline content: serialised child markup (is_xml=True) or the text."""
    children = _children(element)
    if children:
        return "".join(_serialise(child) for child in children), True
    return (element.text or "").strip(), False


def _bbox(element: etree._Element, ows: str, identifier: str) -> InputValue:
    lower = element_text(element.find(qn(ows, "LowerCorner")))
    upper = element_text(element.find(qn(ows, "UpperCorner")))
    if not lower or not upper:
        raise invalid(identifier, f"input '{identifier}': bounding box needs both corners")
    try:
        low = [float(v) for v in lower.split()]
        up = [float(v) for v in upper.split()]
    except ValueError:
        raise invalid(identifier, f"input '{identifier}': corners must be numbers") from None
    if not all(math.isfinite(v) for v in low + up):  # NaN would be echoed as invalid JSON
        raise invalid(identifier, f"input '{identifier}': corners must be finite numbers")
    if len(low) != len(up) or len(low) not in (2, 3):
        raise invalid(identifier, f"input '{identifier}': corners must both be 2D or 3D")
    return InputValue(identifier=identifier, bbox=tuple(low + up), crs=element.get("crs"))


def _reference(element: etree._Element, identifier: str) -> InputValue:
    href = element.get(qn(XLINK, "href")) or element.get("href")
    if not href:
        raise missing("href")
    if (element.get("method") or "GET").upper() != "GET" or _children(element):
        raise WpsError(
            OPTION_NOT_SUPPORTED,
            f"input '{identifier}': only GET references without body or headers are supported",
            locator=identifier,
        )
    return InputValue(identifier=identifier, href=href, mime_type=element.get("mimeType"))


# -- WPS 1.0.0 -------------------------------------------------------------------


def _input1(element: etree._Element) -> InputValue:
    identifier = element_text(element.find(qn(OWS11, "Identifier")))
    if not identifier:
        raise missing("Identifier")
    ref = element.find(qn(WPS1, "Reference"))
    if ref is not None:
        return _reference(ref, identifier)
    data = element.find(qn(WPS1, "Data"))
    if data is None or not _children(data):
        raise invalid(identifier, f"input '{identifier}' needs wps:Data or wps:Reference")
    value = _children(data)[0]
    kind = local_name(value)
    if kind == "LiteralData":
        return InputValue(
            identifier=identifier,
            text=(value.text or "").strip(),
            data_type=value.get("dataType"),
        )
    if kind == "BoundingBoxData":
        return _bbox(value, OWS11, identifier)
    if kind == "ComplexData":
        text, is_xml = _content(value)
        return InputValue(
            identifier=identifier, text=text, is_xml=is_xml, mime_type=value.get("mimeType")
        )
    raise invalid(identifier, f"input '{identifier}': unknown data element '{kind}'")


def _output1(element: etree._Element) -> OutputRequest:
    identifier = element_text(element.find(qn(OWS11, "Identifier")))
    if not identifier:
        raise missing("Identifier")
    as_ref = element.get("asReference")
    return OutputRequest(
        identifier=identifier,
        as_reference=None if as_ref is None else parse_bool("asReference", as_ref),
        mime_type=element.get("mimeType"),
    )


def _execute1(root: etree._Element, identifier: str) -> Execute:
    inputs = tuple(
        _input1(e) for e in root.findall(f"{qn(WPS1, 'DataInputs')}/{qn(WPS1, 'Input')}")
    )
    form = root.find(qn(WPS1, "ResponseForm"))
    doc = form.find(qn(WPS1, "ResponseDocument")) if form is not None else None
    raw = form.find(qn(WPS1, "RawDataOutput")) if form is not None else None
    if raw is not None:
        return Execute(
            version="1.0.0",
            identifier=identifier,
            inputs=inputs,
            outputs=(_output1(raw),),
            response="raw",
        )
    outputs: tuple[OutputRequest, ...] = ()
    store = status = lineage = False
    if doc is not None:
        outputs = tuple(_output1(o) for o in doc.findall(qn(WPS1, "Output")))
        store = parse_bool("storeExecuteResponse", doc.get("storeExecuteResponse"))
        status = parse_bool("status", doc.get("status"))
        lineage = parse_bool("lineage", doc.get("lineage"))
    return Execute(
        version="1.0.0",
        identifier=identifier,
        inputs=inputs,
        outputs=outputs,
        mode="async" if store else "sync",
        status=status,
        lineage=lineage,
    )


# -- WPS 2.0.0 -------------------------------------------------------------------


def _input2(element: etree._Element) -> InputValue:
    identifier = element.get("id")
    if not identifier:
        raise missing("id")
    ref = element.find(qn(WPS2, "Reference"))
    if ref is not None:
        return _reference(ref, identifier)
    if element.find(qn(WPS2, "Input")) is not None:
        raise WpsError(OPTION_NOT_SUPPORTED, "nested inputs are not supported", locator=identifier)
    data = element.find(qn(WPS2, "Data"))
    if data is None:
        raise invalid(identifier, f"input '{identifier}' needs wps:Data or wps:Reference")
    mime = data.get("mimeType")
    children = _children(data)
    first = children[0] if len(children) == 1 else None
    if first is not None and first.tag == qn(WPS2, "LiteralValue"):
        return InputValue(
            identifier=identifier,
            text=(first.text or "").strip(),
            data_type=first.get("dataType"),
            mime_type=mime,
        )
    if first is not None and first.tag in (qn(OWS2, "BoundingBox"), qn(OWS2, "WGS84BoundingBox")):
        return _bbox(first, OWS2, identifier)
    if first is not None and first.tag == qn(WPS2, "ComplexData"):
        # the WPS 2.0 test suite wraps complex content in a wps:ComplexData element
        mime = first.get("mimeType") or mime
        data = first
    text, is_xml = _content(data)
    return InputValue(identifier=identifier, text=text, is_xml=is_xml, mime_type=mime)


def _output2(element: etree._Element) -> OutputRequest:
    identifier = element.get("id")
    if not identifier:
        raise missing("id")
    transmission = element.get("transmission")
    if transmission not in (None, "value", "reference"):
        raise invalid("transmission", f"transmission must be value or reference: {transmission}")
    return OutputRequest(
        identifier=identifier,
        as_reference=None if transmission is None else transmission == "reference",
        mime_type=element.get("mimeType"),
    )


def _execute2(root: etree._Element, identifier: str) -> Execute:
    mode = root.get("mode")
    response = root.get("response")
    if not mode:
        raise missing("mode")
    if not response:
        raise missing("response")
    if mode not in ("sync", "async", "auto"):
        raise invalid("mode", f"mode must be sync, async or auto, got '{mode}'")
    if response not in ("document", "raw"):
        raise invalid("response", f"response must be document or raw, got '{response}'")
    return Execute(
        version="2.0.0",
        identifier=identifier,
        inputs=tuple(_input2(e) for e in root.findall(qn(WPS2, "Input"))),
        outputs=tuple(_output2(e) for e in root.findall(qn(WPS2, "Output"))),
        response=response,
        mode=mode,
        status=mode != "sync",
    )
