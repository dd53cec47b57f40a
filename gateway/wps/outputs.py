"""Job values as WPS data: ``wps:Data`` / ``wps:Reference`` elements and raw responses.

A job's results are an OGC results mapping: output id -> inline JSON value, or
``{"href": url, "type": media type}`` for files. The process schema decides
how an inline value is shown: LiteralData (with its data type), BoundingBoxData,
or ComplexData -- where an XML value is embedded as XML (not escaped text) and
JSON values as JSON text.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from flask import Response, redirect
from lxml import etree

from gateway.http.responses import send_published
from gateway.publication.values import encode_value
from gateway.wps.datatypes import BBOX, LITERAL, IoType, io_type, is_xml_type, literal_text
from gateway.wps.xml import O1, O2, W1, W2, XLINK, parse_fragment, qn, safe_text
from processes.definition import ProcessDefinition

_SAFE_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def output_type(process: ProcessDefinition, output_id: str) -> IoType:
    return io_type((process.outputs.get(output_id) or {}).get("schema") or {})


def input_type(process: ProcessDefinition, input_id: str) -> IoType:
    return io_type((process.inputs.get(input_id) or {}).get("schema") or {})


def is_reference(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("href"), str)


def _bbox_coords(value: Any) -> list[float] | None:
    coords = value.get("bbox") if isinstance(value, dict) else None
    if not isinstance(coords, list) or len(coords) not in (4, 6):
        return None
    if not all(isinstance(c, int | float) and not isinstance(c, bool) for c in coords):
        return None
    if not all(math.isfinite(c) for c in coords):
        return None
    return [float(c) for c in coords]


def _corners(coords: list[float]) -> tuple[str, str]:
    half = len(coords) // 2
    return (
        " ".join(repr(c) for c in coords[:half]),
        " ".join(repr(c) for c in coords[half:]),
    )


def _complex_fill(element: etree._Element, io: IoType, value: Any) -> etree._Element:
    """Fill a ComplexData (1.0) / Data (2.0) element with a value; sets ``mimeType``."""
    if isinstance(value, str):
        mime = io.mime_types[0] if io.mime_types else "text/plain"
        fragment = parse_fragment(value) if is_xml_type(mime) else None
        if fragment is not None:
            element.append(fragment)
        else:
            element.text = safe_text(value)
    else:
        mime = "application/json"
        element.text = safe_text(json.dumps(value))
    element.set("mimeType", mime)
    if io.encoding and isinstance(value, str):
        element.set("encoding", io.encoding)
    return element


def data_1(io: IoType, value: Any) -> etree._Element:
    """A WPS 1.0.0 ``wps:Data`` element for an inline value."""
    coords = _bbox_coords(value) if io.kind == BBOX else None
    if coords is not None:
        lower, upper = _corners(coords)
        box = W1.BoundingBoxData(
            O1.LowerCorner(lower), O1.UpperCorner(upper), dimensions=str(len(coords) // 2)
        )
        if isinstance(value.get("crs"), str):
            box.set("crs", safe_text(value["crs"]))
        return W1.Data(box)
    if io.kind == LITERAL and not isinstance(value, dict | list):
        return W1.Data(W1.LiteralData(safe_text(literal_text(value)), dataType=io.data_type))
    return W1.Data(_complex_fill(W1.ComplexData(), io, value))


def data_2(io: IoType, value: Any) -> etree._Element:
    """A WPS 2.0.0 ``wps:Data`` element for an inline value."""
    coords = _bbox_coords(value) if io.kind == BBOX else None
    if coords is not None:
        lower, upper = _corners(coords)
        box = O2.BoundingBox(
            O2.LowerCorner(lower), O2.UpperCorner(upper), dimensions=str(len(coords) // 2)
        )
        if isinstance(value.get("crs"), str):
            box.set("crs", safe_text(value["crs"]))
        return W2.Data(box, mimeType="text/xml")
    if io.kind == LITERAL and not isinstance(value, dict | list):
        literal = W2.LiteralValue(safe_text(literal_text(value)), dataType=io.data_type)
        return W2.Data(literal, mimeType="text/plain")
    return _complex_fill(W2.Data(), io, value)


def reference_1(value: dict[str, Any], *, xlink: bool) -> etree._Element:
    """``wps:Reference``: outputs carry ``href``, inputs (lineage) ``xlink:href``."""
    ref = W1.Reference({qn(XLINK, "href") if xlink else "href": safe_text(value["href"])})
    if isinstance(value.get("type"), str):
        ref.set("mimeType", safe_text(value["type"]))
    return ref


def reference_2(value: dict[str, Any]) -> etree._Element:
    ref = W2.Reference({qn(XLINK, "href"): safe_text(value["href"])})
    if isinstance(value.get("type"), str):
        ref.set("mimeType", safe_text(value["type"]))
    return ref


# -- raw output ---------------------------------------------------------------------


def _published_file(root: Path, job_id: str, href: str) -> Path | None:
    """The local published copy of ``href`` (``<root>/<job>/<file>``), if present."""
    name = href.rstrip("/").rsplit("/", 1)[-1]
    if not name or name.startswith(".") or not set(name) <= _SAFE_NAME_CHARS:
        return None
    if f"/jobs/{job_id}/outputs/{name}" not in href:
        return None
    folder = (root / job_id).resolve()
    path = (folder / name).resolve()
    if path.parent != folder or not path.is_file():
        return None
    return path


def raw_response(
    process: ProcessDefinition, name: str, value: Any, *, publication_root: Path, job_id: str
) -> Response:
    """The bare value of output ``name`` (RawDataOutput / ``response="raw"``).

    A published file is streamed with its media type; a literal is its text; a
    complex value is its own bytes (:func:`gateway.publication.values.encode_value`:
    XML as XML, base64 content decoded).
    """
    if is_reference(value):
        media = str(value.get("type") or "application/octet-stream")
        path = _published_file(publication_root, job_id, value["href"])
        if path is not None:
            return send_published(path, media)
        return redirect(value["href"], code=303)  # type: ignore[return-value]
    io = output_type(process, name)
    if io.kind == LITERAL and not isinstance(value, dict | list):
        return Response(literal_text(value), content_type="text/plain; charset=utf-8")
    encoded = encode_value((process.outputs.get(name) or {}).get("schema") or {}, value)
    media = encoded.media_type
    if media.startswith("text/") and "charset" not in media:
        media = f"{media}; charset=utf-8"
    return Response(encoded.data, content_type=media)
