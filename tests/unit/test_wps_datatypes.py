"""JSON schema -> WPS kinds, WPS text -> JSON values, and KVP parsing (no HTTP)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.wps.datatypes import BBOX, COMPLEX, LITERAL, io_type, literal_text, to_json
from gateway.wps.exceptions import WpsError
from gateway.wps.kvp import parse_kvp
from gateway.wps.model import Execute, InputValue

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("schema", "kind", "detail"),
    [
        ({"type": "string"}, LITERAL, "string"),
        ({"type": "integer", "minimum": 1}, LITERAL, "integer"),
        ({"type": "number"}, LITERAL, "double"),
        ({"type": "boolean"}, LITERAL, "boolean"),
        ({"type": "string", "format": "date-time"}, LITERAL, "dateTime"),
        ({"type": "string", "contentMediaType": "application/xml"}, COMPLEX, "application/xml"),
        (
            {"oneOf": [{"contentMediaType": "image/png"}, {"contentMediaType": "image/jpeg"}]},
            COMPLEX,
            "image/png",
        ),
        ({"type": "object"}, COMPLEX, "application/json"),
        ({"type": "array", "items": {"type": "number"}}, COMPLEX, "application/json"),
        (
            {"type": "object", "format": "ogc-bbox"},
            BBOX,
            "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        ),
    ],
)
def test_io_type(schema: dict[str, Any], kind: str, detail: str) -> None:
    io = io_type(schema)
    assert io.kind == kind
    if kind == LITERAL:
        assert io.data_type == detail
    elif kind == COMPLEX:
        assert io.mime_types[0] == detail
    else:
        assert io.crs == (detail,)


@pytest.mark.parametrize(
    ("schema", "text", "expected"),
    [
        ({"type": "integer"}, " 42 ", 42),
        ({"type": "number"}, "2", 2),
        ({"type": "number"}, "-1.5e3", -1500.0),
        ({"type": "boolean"}, "TRUE", True),
        ({"type": "boolean"}, "0", False),
        ({"type": "string"}, " keep spaces ", " keep spaces "),
        ({"type": "object"}, '{"a": 1}', {"a": 1}),
        ({"type": "object", "format": "ogc-bbox"}, "1,2,3,4", {"bbox": [1.0, 2.0, 3.0, 4.0]}),
        (
            {"type": "object", "format": "ogc-bbox"},
            "1,2,0,3,4,5,EPSG:4979",
            {"bbox": [1.0, 2.0, 0.0, 3.0, 4.0, 5.0], "crs": "EPSG:4979"},
        ),
    ],
)
def test_to_json(schema: dict[str, Any], text: str, expected: Any) -> None:
    assert to_json(io_type(schema), InputValue(identifier="x", text=text)) == expected


@pytest.mark.parametrize(
    ("schema", "text"),
    [
        ({"type": "integer"}, "1.5"),
        ({"type": "number"}, "nan"),
        ({"type": "number"}, "abc"),
        ({"type": "boolean"}, "yes"),
        ({"type": "object"}, "{not json"),
        ({"type": "object", "format": "ogc-bbox"}, "1,2,3"),
    ],
)
def test_to_json_rejects(schema: dict[str, Any], text: str) -> None:
    with pytest.raises(WpsError) as info:
        to_json(io_type(schema), InputValue(identifier="x", text=text))
    assert (info.value.code, info.value.locator, info.value.status) == (
        "InvalidParameterValue",
        "x",
        400,
    )


def test_reference_keeps_href_and_type() -> None:
    value = InputValue(identifier="image", href="https://e.org/a.tif", mime_type="image/tiff")
    assert to_json(io_type({"type": "string"}), value) == {
        "href": "https://e.org/a.tif",
        "type": "image/tiff",
    }


@pytest.mark.parametrize(
    ("value", "text"),
    [(True, "true"), (7, "7"), (1.5, "1.5"), ("s", "s"), ({"a": 1}, '{"a": 1}')],
)
def test_literal_text(value: Any, text: str) -> None:
    assert literal_text(value) == text


def test_kvp_execute_parsing_with_encoded_separators() -> None:
    request = parse_kvp(
        [
            ("SERVICE", "WPS"),
            ("Request", "execute"),
            ("version", "1.0.0"),
            ("Identifier", "echo"),
            ("DataInputs", "string_input=a%3Bb%40c@datatype=string;integer_input=3"),
            ("ResponseDocument", "string_output@asReference=true;integer_output"),
            ("storeExecuteResponse", "true"),
            ("lineage", "true"),
        ]
    )
    assert isinstance(request, Execute)
    assert request.mode == "async" and request.lineage and not request.status
    assert [(i.identifier, i.text, i.data_type) for i in request.inputs] == [
        ("string_input", "a;b@c", "string"),
        ("integer_input", "3", None),
    ]
    assert [(o.identifier, o.as_reference) for o in request.outputs] == [
        ("string_output", True),
        ("integer_output", None),
    ]
