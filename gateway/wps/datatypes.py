"""From the processes' JSON schemas to WPS data kinds, and values both ways.

One process description serves OGC API and WPS. The WPS kind of an input or
output is derived from its JSON schema:

* ``format: ogc-bbox``                      -> BoundingBoxData
* ``contentMediaType`` (also in oneOf/anyOf) -> ComplexData with those mime types
  (and ``encoding="base64"`` for ``contentEncoding: base64`` / ``binary``)
* ``type: object`` / ``array``              -> ComplexData, ``application/json``
* ``string`` / ``number`` / ``integer`` / ``boolean`` -> LiteralData with the
  XML Schema data type (``string``, ``double``, ``integer``, ``boolean``;
  ``dateTime``, ``date``, ``anyURI`` from the string ``format``)

WPS values arrive as text; :func:`to_json` types them for the OGC execute
body (which the job service then validates against the same schema).
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import BadRequest
from gateway.http_input import decode_json
from gateway.publication.values import BASE64_ENCODINGS
from gateway.wps.exceptions import invalid
from gateway.wps.model import InputValue

LITERAL = "literal"
COMPLEX = "complex"
BBOX = "bbox"

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
JSON_TYPE = "application/json"
_XS_1 = "http://www.w3.org/TR/xmlschema-2/#"
_XS_2 = "http://www.w3.org/2001/XMLSchema#"
_STRING_FORMATS = {"date-time": "dateTime", "date": "date", "time": "time", "uri": "anyURI"}
_JSON_TYPES = {"integer": "integer", "number": "double", "boolean": "boolean", "string": "string"}
_INT = re.compile(r"^[+-]?\d+$")
#: Digits of the largest integer a binary64 double holds (1.8e308): 309.
_MAX_INT_DIGITS = 309
_XML_TYPES = ("application/xml", "text/xml")


@dataclass(frozen=True)
class IoType:
    """How one input or output is exposed through WPS."""

    kind: str
    data_type: str = "string"
    mime_types: tuple[str, ...] = ()
    #: Complex content is JSON (object/array schema) rather than a string.
    json_content: bool = False
    default: Any = None
    allowed: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    crs: tuple[str, ...] = field(default=(CRS84,))
    #: ``base64`` when the schema's ``contentEncoding`` says the content is base64 text.
    encoding: str | None = None

    def data_type_uri(self, version: str) -> str:
        return (_XS_2 if version.startswith("2") else _XS_1) + self.data_type

    @property
    def default_mime(self) -> str:
        if self.kind == LITERAL:
            return "text/plain"
        if self.kind == BBOX:
            return "text/xml"
        return self.mime_types[0] if self.mime_types else JSON_TYPE


def is_xml_type(mime: str | None) -> bool:
    base = (mime or "").split(";")[0].strip().lower()
    return base in _XML_TYPES or base.endswith("+xml")


def _media_types(schema: dict[str, Any]) -> list[str]:
    found: list[str] = []
    if isinstance(schema.get("contentMediaType"), str):
        found.append(schema["contentMediaType"])
    for key in ("oneOf", "anyOf"):
        for alt in schema.get(key) or []:
            if isinstance(alt, dict):
                found.extend(m for m in _media_types(alt) if m not in found)
    return found


def io_type(schema: dict[str, Any]) -> IoType:
    """The WPS kind of a JSON schema (see the module docstring)."""
    kind = schema.get("type")
    if schema.get("format") == "ogc-bbox":
        crs_prop = (schema.get("properties") or {}).get("crs") or {}
        default_crs = crs_prop.get("default") if isinstance(crs_prop, dict) else None
        return IoType(kind=BBOX, crs=(str(default_crs or CRS84),))
    media = _media_types(schema)
    if media:
        base64 = schema.get("contentEncoding") in BASE64_ENCODINGS
        return IoType(
            kind=COMPLEX,
            mime_types=tuple(media),
            json_content=kind in ("object", "array"),
            encoding="base64" if base64 else None,
        )
    if kind in ("object", "array") or (kind is None and "properties" in schema):
        return IoType(kind=COMPLEX, mime_types=(JSON_TYPE,), json_content=True)
    data_type = _JSON_TYPES.get(kind, "string") if isinstance(kind, str) else "string"
    if kind == "string" and schema.get("format") in _STRING_FORMATS:
        data_type = _STRING_FORMATS[schema["format"]]
    enum = schema.get("enum")
    return IoType(
        kind=LITERAL,
        data_type=data_type,
        default=schema.get("default"),
        allowed=tuple(enum) if isinstance(enum, list) else (),
        minimum=schema.get("minimum"),
        maximum=schema.get("maximum"),
    )


# -- WPS text -> JSON ------------------------------------------------------------------


def _literal(io: IoType, text: str, name: str) -> Any:
    value = text.strip()
    if io.data_type == "integer":
        if not _INT.match(value):
            raise invalid(name, f"input '{name}' must be an integer, got '{text}'")
        return _integer(value, name)
    if io.data_type == "double":
        if _INT.match(value):
            return _integer(value, name)
        try:
            number = float(value)
        except ValueError:
            raise invalid(name, f"input '{name}' must be a number, got '{text}'") from None
        if not math.isfinite(number):
            raise invalid(name, f"input '{name}' must be a finite number, got '{text}'")
        return number
    if io.data_type == "boolean":
        if value.lower() in ("true", "1"):
            return True
        if value.lower() in ("false", "0"):
            return False
        raise invalid(name, f"input '{name}' must be true or false, got '{text}'")
    return text


def _integer(value: str, name: str) -> int:
    """An integer literal within a binary64 double's range (the JSON reader's rule)."""
    # the length first: int() of over 4300 digits raises (Python's int-string limit)
    if len(value.lstrip("+-")) > _MAX_INT_DIGITS or abs(int(value)) > sys.float_info.max:
        raise invalid(name, f"input '{name}' is beyond the range of numbers (about 1.8e308)")
    return int(value)


def _bbox_from_text(text: str, name: str) -> dict[str, Any]:
    """KVP form ``minx,miny,maxx,maxy[,crs]`` (or 6 numbers for 3D)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    crs = None
    if parts and not _is_number(parts[-1]):
        crs = parts.pop()
    if len(parts) not in (4, 6) or not all(_is_number(p) for p in parts):
        raise invalid(name, f"input '{name}' must be minx,miny,maxx,maxy[,crs], got '{text}'")
    return _bbox_json(tuple(float(p) for p in parts), crs)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _bbox_json(coords: tuple[float, ...], crs: str | None) -> dict[str, Any]:
    value: dict[str, Any] = {"bbox": list(coords)}
    if crs:
        value["crs"] = crs
    return value


def to_json(io: IoType, value: InputValue) -> Any:
    """The OGC execute-body value of one WPS input occurrence."""
    name = value.identifier
    if value.href is not None:
        ref: dict[str, Any] = {"href": value.href}
        if value.mime_type:
            ref["type"] = value.mime_type
        return ref
    if value.bbox is not None:
        if io.kind != BBOX:
            raise invalid(name, f"input '{name}' does not take a bounding box")
        return _bbox_json(value.bbox, value.crs)
    text = value.text or ""
    if io.kind == BBOX:
        return _bbox_from_text(text, name)
    if io.kind == LITERAL:
        return _literal(io, text, name)
    if io.json_content:
        try:
            return decode_json(text, what=f"input '{name}'")
        except BadRequest as exc:
            raise invalid(name, f"{exc.detail} ({JSON_TYPE})") from None
    return text


# -- JSON -> WPS text ------------------------------------------------------------------


def literal_text(value: Any) -> str:
    """A JSON value as literal text (``true``, ``7``, ``1.5``, strings unchanged)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)
