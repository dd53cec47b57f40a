"""DescribeProcess documents (WPS 1.0.0 and 2.0.0) derived from the process descriptions.

Each input/output schema is mapped by :func:`gateway.wps.datatypes.io_type`.
WPS 1.0.0 declares the children of ``ProcessDescription`` unqualified (its
schema has no ``elementFormDefault``), hence the no-namespace builder ``U``.
"""

from __future__ import annotations

from typing import Any

from lxml import etree
from lxml.builder import ElementMaker

from gateway.wps.capabilities import process_properties
from gateway.wps.datatypes import BBOX, LITERAL, IoType, io_type, literal_text
from gateway.wps.xml import (
    O1,
    O2,
    OWS2,
    OWS11,
    SCHEMA_LOCATIONS,
    W1,
    W2,
    WPS1,
    XML_NS,
    XSI,
    U,
    qn,
    safe_text,
)
from processes.definition import ProcessDefinition

#: WPS 1.0.0 maxOccurs is a positiveInteger: "unbounded" is advertised as this.
UNBOUNDED_1 = 1000

#: The optional input every process offers over WPS to name the HPC site (routing's
#: explicit choice, docs/federation.md); it is not passed to the process.
SITE_INPUT = "hpc_site"
_SITE_INPUT_DESC: dict[str, Any] = {
    "title": "HPC site",
    "description": "Optional: the HPC site that must run the job (default: the gateway routes it).",
    "minOccurs": 0,
    "maxOccurs": 1,
    "schema": {"type": "string"},
}


def wps_inputs(process: ProcessDefinition) -> dict[str, dict[str, Any]]:
    """The process's inputs as WPS offers them: ``hpc_site`` first (WPS conformance
    suites exercise the *last* literal input), unless the process has its own."""
    if SITE_INPUT in process.inputs:
        return dict(process.inputs)
    return {SITE_INPUT: _SITE_INPUT_DESC, **process.inputs}


def _texts(maker: ElementMaker, io_id: str, desc: dict[str, Any]) -> dict[str, etree._Element]:
    title = maker.Title(safe_text(desc.get("title") or io_id))
    abstract = desc.get("description")
    return {
        "id": maker.Identifier(io_id),
        "title": title,
        **({"abstract": maker.Abstract(safe_text(abstract))} if abstract else {}),
    }


def _allowed(maker: ElementMaker, io: IoType) -> etree._Element:
    if io.allowed:
        return maker.AllowedValues(*[maker.Value(safe_text(literal_text(v))) for v in io.allowed])
    if io.minimum is not None or io.maximum is not None:
        bounds = []
        if io.minimum is not None:
            bounds.append(maker.MinimumValue(literal_text(io.minimum)))
        if io.maximum is not None:
            bounds.append(maker.MaximumValue(literal_text(io.maximum)))
        return maker.AllowedValues(maker.Range(*bounds))  # default rangeClosure: closed
    return maker.AnyValue()


def _data_type(maker: ElementMaker, ows: str, io: IoType, version: str) -> etree._Element:
    return maker.DataType(io.data_type, {qn(ows, "reference"): io.data_type_uri(version)})


# -- WPS 1.0.0 -------------------------------------------------------------------------


def _formats_1(io: IoType) -> list[etree._Element]:
    def one(mime: str) -> etree._Element:
        encoding = [U.Encoding(io.encoding)] if io.encoding else []
        return U.Format(U.MimeType(mime), *encoding)

    return [U.Default(one(io.mime_types[0])), U.Supported(*[one(m) for m in io.mime_types])]


def _crs_1(io: IoType) -> list[etree._Element]:
    return [U.Default(U.CRS(io.crs[0])), U.Supported(*[U.CRS(c) for c in io.crs])]


def _input_1(io_id: str, desc: dict[str, Any]) -> etree._Element:
    io = io_type(desc.get("schema") or {})
    t = _texts(O1, io_id, desc)
    if io.kind == LITERAL:
        data = U.LiteralData(_data_type(O1, OWS11, io, "1.0.0"), _allowed(O1, io))
        if io.default is not None:
            data.append(U.DefaultValue(safe_text(literal_text(io.default))))
    elif io.kind == BBOX:
        data = U.BoundingBoxData(*_crs_1(io))
    else:
        data = U.ComplexData(*_formats_1(io))
    max_occurs = desc.get("maxOccurs", 1)
    return U.Input(
        *t.values(),
        data,
        minOccurs=str(int(desc.get("minOccurs", 1))),
        maxOccurs=str(UNBOUNDED_1 if max_occurs == "unbounded" else int(max_occurs)),
    )


def _output_1(io_id: str, desc: dict[str, Any]) -> etree._Element:
    io = io_type(desc.get("schema") or {})
    t = _texts(O1, io_id, desc)
    if io.kind == LITERAL:
        data = U.LiteralOutput(_data_type(O1, OWS11, io, "1.0.0"))
    elif io.kind == BBOX:
        data = U.BoundingBoxOutput(*_crs_1(io))
    else:
        data = U.ComplexOutput(*_formats_1(io))
    return U.Output(*t.values(), data)


def description_1(process: ProcessDefinition) -> etree._Element:
    """One WPS 1.0.0 ``ProcessDescription``."""
    is_async = "async-execute" in process.jobControlOptions
    children: list[etree._Element] = [
        O1.Identifier(process.id),
        O1.Title(safe_text(process.title)),
    ]
    if process.description:
        children.append(O1.Abstract(safe_text(process.description)))
    children.append(U.DataInputs(*[_input_1(k, v) for k, v in wps_inputs(process).items()]))
    children.append(U.ProcessOutputs(*[_output_1(k, v) for k, v in process.outputs.items()]))
    element = U.ProcessDescription(
        *children,
        storeSupported="true" if is_async else "false",
        statusSupported="true" if is_async else "false",
    )
    element.set(qn(WPS1, "processVersion"), process.version)
    return element


def describe_1(processes: list[ProcessDefinition]) -> etree._Element:
    doc = W1.ProcessDescriptions(
        *[description_1(p) for p in processes],
        {"service": "WPS", "version": "1.0.0", qn(XML_NS, "lang"): "en-US"},
    )
    doc.set(qn(XSI, "schemaLocation"), SCHEMA_LOCATIONS["describe1"])
    return doc


# -- WPS 2.0.0 -------------------------------------------------------------------------


def _data_description_2(io: IoType) -> etree._Element:
    if io.kind == LITERAL:
        domain = U.LiteralDataDomain(
            _allowed(O2, io), _data_type(O2, OWS2, io, "2.0.0"), default="true"
        )
        if io.default is not None:
            domain.append(O2.DefaultValue(safe_text(literal_text(io.default))))
        return W2.LiteralData(W2.Format(mimeType="text/plain", default="true"), domain)
    if io.kind == BBOX:
        return W2.BoundingBoxData(
            W2.Format(mimeType="text/xml", default="true"),
            *[
                W2.SupportedCRS(c, **({"default": "true"} if i == 0 else {}))
                for i, c in enumerate(io.crs)
            ],
        )
    encoding = {"encoding": io.encoding} if io.encoding else {}
    return W2.ComplexData(
        *[
            W2.Format(mimeType=m, **encoding, **({"default": "true"} if i == 0 else {}))
            for i, m in enumerate(io.mime_types)
        ]
    )


def _io_2(tag: str, io_id: str, desc: dict[str, Any], attrs: dict[str, str]) -> etree._Element:
    t = _texts(O2, io_id, desc)
    children = [t["title"], *([t["abstract"]] if "abstract" in t else []), t["id"]]
    io = io_type(desc.get("schema") or {})
    return W2(tag, *children, _data_description_2(io), attrs)


def description_2(process: ProcessDefinition) -> etree._Element:
    """One WPS 2.0.0 ``wps:ProcessOffering``."""
    head: list[etree._Element] = [O2.Title(safe_text(process.title))]
    if process.description:
        head.append(O2.Abstract(safe_text(process.description)))
    if process.keywords:
        head.append(O2.Keywords(*[O2.Keyword(safe_text(k)) for k in process.keywords]))
    head.append(O2.Identifier(process.id))
    inputs = []
    for io_id, desc in wps_inputs(process).items():
        max_occurs = desc.get("maxOccurs", 1)
        occurs = {
            "minOccurs": str(int(desc.get("minOccurs", 1))),
            "maxOccurs": "unbounded" if max_occurs == "unbounded" else str(int(max_occurs)),
        }
        inputs.append(_io_2("Input", io_id, desc, occurs))
    outputs = [_io_2("Output", k, v, {}) for k, v in process.outputs.items()]
    return W2.ProcessOffering(W2.Process(*head, *inputs, *outputs), process_properties(process))


def describe_2(processes: list[ProcessDefinition]) -> etree._Element:
    doc = W2.ProcessOfferings(*[description_2(p) for p in processes])
    doc.set(qn(XSI, "schemaLocation"), SCHEMA_LOCATIONS["wps2"])
    return doc
