"""Execution forms from process descriptions, and the OGC execute requests they make."""

from __future__ import annotations

import pytest

from gateway.web.forms import FormError, execute_body, field_of_error, form_fields
from gateway.web.signin import pkce_challenge, safe_next
from processes.registry import ProcessRegistry

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def echo_fields():
    return {f.name: f for f in form_fields(ProcessRegistry.builtin([]).get("echo"))}


def test_each_schema_gets_its_kind_of_field(echo_fields) -> None:
    assert echo_fields["enum_input"].kind == "select"
    assert echo_fields["enum_input"].options == ("Value1", "Value2", "Value3")
    assert echo_fields["boolean_input"].options == ("true", "false")
    assert echo_fields["integer_input"].kind == "number"
    assert echo_fields["integer_input"].step == "1"
    assert echo_fields["number_input"].step == "any"
    assert echo_fields["bounding_box_input"].kind == "bbox"
    assert echo_fields["xml_input"].kind == "reference"
    assert echo_fields["object_input"].kind == "json"
    assert echo_fields["string_input"].kind == "text"
    assert not echo_fields["string_input"].required


def test_ndvi_bounds_and_defaults_reach_the_form() -> None:
    fields = {f.name: f for f in form_fields(ProcessRegistry.builtin([]).get("ndvi"))}
    assert fields["red_band"].minimum == 1 and fields["red_band"].default == "3"
    assert fields["image"].kind == "reference" and fields["image"].required


def test_the_form_becomes_an_execute_request(echo_fields) -> None:
    form = {
        "string_input": " hi ",
        "integer_input": "7",
        "number_input": "2.5",
        "boolean_input": "false",
        "enum_input": "Value2",
        "bounding_box_input.minx": "1",
        "bounding_box_input.miny": "2",
        "bounding_box_input.maxx": "3",
        "bounding_box_input.maxy": "4",
        "xml_input.href": "https://example.org/item.json",
        "xml_input.asset": "doc",
        "object_input": '{"a": 1}',
        "array_input": "",
        "hpcSite": "mesocentre",
    }
    body = execute_body(list(echo_fields.values()), form)
    assert body == {
        "inputs": {
            "string_input": "hi",
            "integer_input": 7,
            "number_input": 2.5,
            "boolean_input": False,
            "enum_input": "Value2",
            "bounding_box_input": {"bbox": [1.0, 2.0, 3.0, 4.0]},
            "xml_input": {"href": "https://example.org/item.json", "asset": "doc"},
            "object_input": {"a": 1},
        },
        "hpcSite": "mesocentre",
    }


@pytest.mark.parametrize(
    ("form", "name"),
    [
        ({"integer_input": "1.5"}, "integer_input"),
        ({"number_input": "ten"}, "number_input"),
        ({"object_input": "{nope"}, "object_input"),
        ({"bounding_box_input.minx": "1", "bounding_box_input.maxy": "x"}, "bounding_box_input"),
    ],
)
def test_a_value_that_is_not_even_json_names_its_field(echo_fields, form, name) -> None:
    with pytest.raises(FormError) as caught:
        execute_body(list(echo_fields.values()), form)
    assert caught.value.name == name


def test_service_errors_are_placed_by_the_input_they_name(echo_fields) -> None:
    fields = list(echo_fields.values())
    assert field_of_error("input 'integer_input': 'x' is not of type 'integer'", fields) == (
        "integer_input"
    )
    assert field_of_error("missing required input 'string_input'", fields) == "string_input"
    assert field_of_error("'hpcSite' must be the name of an HPC site", fields) == "hpcSite"
    assert field_of_error("input 'elsewhere': no", fields) is None
    assert field_of_error("the budget is exhausted", fields) is None


def test_pkce_challenge_is_rfc_7636s() -> None:
    # RFC 7636 appendix B
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.mark.parametrize(
    ("asked", "back"),
    [
        ("/ui/jobs?status=running", "/ui/jobs?status=running"),
        ("https://evil.example/", "/ui/"),
        ("//evil.example/x", "/ui/"),
        ("/\\evil.example", "/ui/"),
        (None, "/ui/"),
    ],
)
def test_sign_in_returns_only_to_a_local_page(asked, back) -> None:
    assert safe_next(asked) == back
