"""Output values as their own bytes, multipart/related bodies, and echo's input validation."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from gateway.errors import InvalidInput
from gateway.jobs.execute_request import parse_execute_request
from gateway.ogcapi.multipart import RelatedBody, split_media_type
from gateway.publication.values import encode_value
from gateway.wps.outputs import raw_response
from processes.registry import ProcessRegistry

pytestmark = pytest.mark.unit

XML_SCHEMA = {"type": "string", "contentMediaType": "application/xml"}
BINARY_SCHEMA = {
    "type": "string",
    "contentEncoding": "base64",
    "contentMediaType": "application/octet-stream",
}


@pytest.mark.parametrize(
    ("schema", "value", "data", "media", "extension"),
    [
        (XML_SCHEMA, "<a>1</a>", b"<a>1</a>", "application/xml", ".xml"),
        (
            {"type": "string"},
            "hello_literal",
            b"hello_literal",
            "text/plain; charset=utf-8",
            ".txt",
        ),
        ({"type": "integer"}, 7, b"7", "application/json", ".json"),
        ({"type": "object"}, {"a": [1]}, b'{"a": [1]}', "application/json", ".json"),
        (BINARY_SCHEMA, "AAEC/w==", b"\x00\x01\x02\xff", "application/octet-stream", ".bin"),
        (
            {"type": "string"},
            {"value": "PGEvPg==", "mediaType": "image/svg+xml", "encoding": "base64"},
            b"<a/>",
            "image/svg+xml",
            ".xml",
        ),
    ],
)
def test_values_are_their_own_bytes(
    schema: dict[str, Any], value: Any, data: bytes, media: str, extension: str
) -> None:
    encoded = encode_value(schema, value)
    assert (encoded.data, encoded.media_type, encoded.extension) == (data, media, extension)


def test_a_geotiff_keeps_its_media_type_parameters() -> None:
    assert split_media_type("image/tiff; application=geotiff") == (
        "image",
        "tiff",
        {"application": "geotiff"},
    )
    assert split_media_type("no media type")[:2] == ("application", "octet-stream")


def test_related_body_reads_back_with_the_standard_parser() -> None:
    related = RelatedBody()
    related.add("ndvi", "image/tiff; application=geotiff", b"II*\x00\r\n\n\xff")
    related.add("stats", "application/json", b'{"mean": 0.5}')
    related.add("big", "image/png", b"", location="http://gw/jobs/1/outputs/big.png")
    body, content_type = related.encode()
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.default
    )
    assert message.get_content_type() == "multipart/related"
    assert message.get_param("type") == "image/tiff"
    assert message.get_param("start") == "<ndvi>"
    parts = list(message.iter_parts())
    assert [p["Content-ID"] for p in parts] == ["<ndvi>", "<stats>", "<big>"]
    assert parts[0].get_content() == b"II*\x00\r\n\n\xff"  # byte for byte
    assert parts[0].get_param("application") == "geotiff"
    assert parts[1].get_content() == b'{"mean": 0.5}'
    assert parts[2]["Content-Location"] == "http://gw/jobs/1/outputs/big.png"


# -- echo's input kinds, validated by the gateway -----------------------------------


@pytest.fixture(scope="module")
def echo() -> Any:
    return ProcessRegistry.builtin(only=["echo"]).get("echo")


def test_echo_accepts_every_input_kind(echo: Any) -> None:
    inputs = {
        "array_input": [1, 2, 3],
        "binary_input": {"value": "AAEC/w==", "mediaType": "application/octet-stream"},
        "mixed_input": {"href": "https://data.example.org/note.txt"},
        "enum_input": "Value1",
    }
    request = parse_execute_request(echo, {"inputs": inputs})
    assert request.inputs == {
        "array_input": [1, 2, 3],
        "binary_input": "AAEC/w==",
        "mixed_input": {"href": "https://data.example.org/note.txt"},
        "enum_input": "Value1",
    }
    assert parse_execute_request(echo, {"inputs": {"mixed_input": "inline"}}).inputs == {
        "mixed_input": "inline"
    }


@pytest.mark.parametrize(
    ("inputs", "named", "why"),
    [
        ({"enum_input": "Value4"}, "enum_input", "is not one of"),
        ({"array_input": [1]}, "array_input", "too short"),
        ({"array_input": "1,2"}, "array_input", "is not of type 'array'"),
        ({"array_input": [1, "x"]}, "array_input", "at '1'"),
        ({"binary_input": "not base64!"}, "binary_input", "not valid base64"),
        ({"integer_input": "7"}, "integer_input", "is not of type 'integer'"),
    ],
)
def test_echo_refuses_bad_values_naming_the_input(
    echo: Any, inputs: dict[str, Any], named: str, why: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_execute_request(echo, {"inputs": inputs})
    assert caught.value.status == 400
    assert f"input '{named}'" in caught.value.detail and why in caught.value.detail


def test_a_missing_required_input_is_refused_naming_it() -> None:
    ndvi = ProcessRegistry.builtin(only=["ndvi"]).get("ndvi")
    with pytest.raises(InvalidInput, match="missing required input 'image'"):
        parse_execute_request(ndvi, {"inputs": {}})


def test_wps_raw_output_of_binary_content_is_its_bytes() -> None:
    echo = ProcessRegistry.builtin(only=["echo"]).get("echo")
    with Flask("raw").test_request_context():
        binary = raw_response(
            echo, "binary_output", "AAEC/w==", publication_root=Path("/nonexistent"), job_id="x"
        )
        literal = raw_response(
            echo, "string_output", "hi", publication_root=Path("/nonexistent"), job_id="x"
        )
    assert (binary.mimetype, binary.get_data()) == ("application/octet-stream", b"\x00\x01\x02\xff")
    assert (literal.content_type, literal.get_data()) == ("text/plain; charset=utf-8", b"hi")
