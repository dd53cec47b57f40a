"""Issue 14.2 and 14.3: malformed input is a 400 naming it, on every surface, never a 500.

Bracketed hosts ``urlsplit`` rejects, JSON nested too deep, numbers beyond a
double, NaN/Infinity, lone surrogates and invalid UTF-8 -- in execute
requests, quotations, subscriber URLs and WPS requests (KVP and XML). A
refused request creates no job.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from gateway.errors import BadRequest
from gateway.jobs.records import JobQuery
from gateway.strict_json import MAX_DEPTH, decode_json, pointer_at
from tests.security.conftest import ASYNC, EXECUTE, assert_problem, finished_job, job_count

pytestmark = pytest.mark.unit

BAD_HOSTS = [
    "http://[127.0.0.1]/",
    "http://[::1/",
    "http://[zz]/",
    "https://[]/a",
    "http://[::1]x/",
    "http://host:99999/",
    "http://host:-1/",
]


def _post(client, body: str | bytes, path: str = EXECUTE):
    return client.post(path, data=body, content_type="application/json", headers=ASYNC)


# -- URLs ---------------------------------------------------------------------------


@pytest.mark.parametrize("href", BAD_HOSTS)
def test_bad_href_in_an_input_is_400_naming_the_input(client, services, href):
    r = client.post(EXECUTE, json={"inputs": {"string_input": {"href": href}}}, headers=ASYNC)
    assert_problem(r, 400, "string_input", "not a valid URL")
    assert job_count(services) == 0


@pytest.mark.parametrize("href", BAD_HOSTS)
def test_bad_subscriber_uri_is_400_naming_the_key(client, services, href):
    body = {"inputs": {"string_input": "x"}, "subscriber": {"successUri": href}}
    assert_problem(client.post(EXECUTE, json=body, headers=ASYNC), 400, "successUri")
    assert job_count(services) == 0


@pytest.mark.parametrize("href", BAD_HOSTS)
def test_bad_href_in_a_quotation_is_400(client, href):
    body = {"inputs": {"string_input": {"href": href}}}
    assert_problem(client.post("/processes/echo/quotations", json=body), 400, "string_input")


@pytest.mark.parametrize("href", BAD_HOSTS)
def test_bad_href_in_a_wps_kvp_reference_is_an_ows_400(client, services, href):
    query = (
        "service=WPS&request=Execute&version=1.0.0&identifier=echo"
        f"&DataInputs=xml_input=@xlink:href={quote(href, safe='')}@mimeType=text/xml"
        "&storeExecuteResponse=true&status=true"
    )
    r = client.get(f"/wps?{query}")
    assert r.status_code == 400, r.data
    assert b"ExceptionReport" in r.data and b"xml_input" in r.data
    assert job_count(services) == 0


@pytest.mark.parametrize("href", BAD_HOSTS)
def test_bad_href_in_a_wps_xml_reference_is_an_ows_400(client, services, href):
    body = (
        '<wps:Execute service="WPS" version="2.0.0" response="document" mode="async" '
        'xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0" '
        'xmlns:xlink="http://www.w3.org/1999/xlink">'
        "<ows:Identifier>echo</ows:Identifier>"
        f'<wps:Input id="xml_input"><wps:Reference xlink:href="{href}"/></wps:Input>'
        "</wps:Execute>"
    )
    r = client.post("/wps", data=body, content_type="application/xml")
    assert r.status_code == 400, r.data
    assert b"ExceptionReport" in r.data
    assert job_count(services) == 0


# -- JSON ---------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 10_000, 100_000])
@pytest.mark.parametrize("open_, close", [("[", "]"), ('{"a":', "}")])
def test_deep_nesting_is_400(client, services, depth, open_, close):
    value = open_ * depth + "1" + close * depth
    r = _post(client, '{"inputs": {"string_input": ' + value + "}}")
    assert_problem(r, 400, "nested deeper", "/inputs/string_input")
    assert job_count(services) == 0


def test_nesting_within_the_limit_is_read():
    value = decode_json(("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)).encode())
    assert isinstance(value, list)


@pytest.mark.parametrize(
    "number",
    ["1" * 5000, "-" + "9" * 5000, "1e400", "-1e400", "1" * 400, "0." + "0" * 5000 + "1e99999"],
)
def test_numbers_beyond_a_double_are_400_naming_the_input(client, services, number):
    r = _post(client, '{"inputs": {"number_input": ' + number + "}}")
    assert_problem(r, 400, "/inputs/number_input")
    assert job_count(services) == 0


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "nan", "inf"])
def test_nan_and_infinity_are_not_json(client, services, constant):
    r = _post(client, '{"inputs": {"number_input": ' + constant + "}}")
    assert_problem(r, 400, "/inputs/number_input")
    assert job_count(services) == 0


@pytest.mark.parametrize(
    "text",
    [r'"\ud800"', r'"\udfff"', r'"a\ud83d"', r'"\ude00x"', r'"\ud800\ud800"'],
)
def test_lone_surrogates_are_400_and_create_no_job(client, services, text):
    r = _post(client, '{"inputs": {"string_input": ' + text + "}}")
    assert_problem(r, 400, "/inputs/string_input", "surrogate")
    assert job_count(services) == 0


def test_a_surrogate_in_a_key_is_400(client):
    assert_problem(_post(client, '{"inputs": {"\\ud800": 1}}'), 400, "surrogate")


def test_a_surrogate_pair_is_text(client, services):
    r = _post(client, '{"inputs": {"string_input": "\\ud83d\\ude00"}}')
    assert r.status_code == 201
    assert services.store.get(r.get_json()["jobID"]).inputs == {"string_input": "\U0001f600"}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"inputs": {"string_input": "\xff"}}',
        b'{"inputs": {"string_input": "\xed\xa0\x80"}}',  # a surrogate encoded as UTF-8
        b'{"inputs": {"string_input": "\xc0\xaf"}}',  # overlong
        '{"inputs": {"string_input": "é"}}'.encode("utf-16"),
        '{"inputs": {"string_input": "é"}}'.encode("latin-1"),
    ],
)
def test_text_that_is_not_utf8_is_400(client, services, raw):
    assert_problem(_post(client, raw), 400, "UTF-8")
    assert job_count(services) == 0


def test_a_byte_order_mark_is_ignored(client):
    r = _post(client, b'\xef\xbb\xbf{"inputs": {"string_input": "x"}}')
    assert r.status_code == 201


@pytest.mark.parametrize("body", ["{", '{"inputs": ', "[1,]", '{"a" 1}', "\x00", "{}{}"])
def test_broken_json_is_400(client, body):
    assert_problem(_post(client, body), 400, "not valid JSON")


def test_quotations_read_the_same_way(client):
    for body in ('{"inputs": {"string_input": "\\ud800"}}', "[" * 10_000):
        assert_problem(_post(client, body, "/processes/echo/quotations"), 400)


def test_wps_json_complex_input_is_read_the_same_way(client, services):
    query = (
        "service=WPS&request=Execute&version=1.0.0&identifier=echo"
        "&DataInputs=json_input=" + quote('{"a": NaN}', safe="") + "@mimeType=application/json"
    )
    r = client.get(f"/wps?{query}")
    assert r.status_code == 400, r.data
    assert b"ExceptionReport" in r.data
    assert job_count(services) == 0


def test_wps_bounding_box_corners_must_be_finite(client, services):
    body = (
        '<wps:Execute service="WPS" version="2.0.0" response="document" mode="async" '
        'xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0">'
        "<ows:Identifier>echo</ows:Identifier>"
        '<wps:Input id="bounding_box_input"><wps:Data>'
        '<ows:BoundingBox crs="EPSG:4326"><ows:LowerCorner>NaN 2</ows:LowerCorner>'
        "<ows:UpperCorner>3 inf</ows:UpperCorner></ows:BoundingBox>"
        "</wps:Data></wps:Input></wps:Execute>"
    )
    r = client.post("/wps", data=body, content_type="application/xml")
    assert r.status_code == 400, r.data
    assert job_count(services) == 0


# -- a stored surrogate cannot break reads ------------------------------------------


def test_results_stored_with_a_lone_surrogate_still_read(client, services):
    # a job accepted before input was strict: its results must not 500 forever
    job = finished_job(services, {"string_input": "\ud800"}, {"string_output": "\ud800"})
    for path in (f"/jobs/{job.id}/results", f"/jobs/{job.id}"):
        r = client.get(path)
        assert r.status_code == 200, (path, r.data)
        json.loads(r.data)  # valid JSON (the surrogate escaped)


# -- the pointer helper -------------------------------------------------------------


@pytest.mark.parametrize(
    "text, pointer",
    [
        ('{"inputs": {"n": NaN', "/inputs/n"),
        ('{"a": [1, 2, {"b": x', "/a/2/b"),
        ('{"a/b~": x', "/a~1b~0"),
        ('{"a": "{[\\"", "b": x', "/b"),
        ("x", ""),
    ],
)
def test_pointer_at_names_the_value_being_read(text, pointer):
    assert pointer_at(text.encode(), len(text) - 1) == pointer


def test_decode_json_names_what_it_reads():
    with pytest.raises(BadRequest, match="input 'x' is not valid JSON"):
        decode_json("[NaN]", what="input 'x'")


# -- WPS literals and query strings -------------------------------------------------


def _kvp_execute(data_inputs: str) -> str:
    return (
        "/wps?service=WPS&request=Execute&version=1.0.0&identifier=echo"
        f"&DataInputs={data_inputs}&storeExecuteResponse=true&status=true"
    )


@pytest.mark.parametrize(
    "data_inputs",
    [
        "integer_input=" + "1" * 5000,
        "number_input=-" + "9" * 5000,
        "integer_input=" + "9" * 309,
        "number_input=1e999",
        "number_input=NaN",
        "bounding_box_input=1,2,3,inf",
    ],
)
def test_wps_numbers_beyond_a_double_are_an_ows_400(client, services, data_inputs):
    r = client.get(_kvp_execute(data_inputs))
    assert r.status_code == 400, r.data
    assert b"InvalidParameterValue" in r.data and b"_input" in r.data
    assert job_count(services) == 0


@pytest.mark.parametrize("encoded", ["%ED%A0%80", "%FF", "%C0%AF", "%E2%82"])
def test_query_text_that_is_not_utf8_is_400_naming_the_parameter(client, services, encoded):
    assert_problem(client.get(f"/jobs?processID={encoded}"), 400, "processID", "UTF-8")
    r = client.get(_kvp_execute(f"string_input={encoded}"))
    assert r.status_code == 400 and b"DataInputs" in r.data
    assert job_count(services) == 0


def test_utf8_query_text_is_fine(client, services):
    assert client.get(_kvp_execute("string_input=%C3%A9t%C3%A9")).status_code == 200
    assert services.store.page(JobQuery(limit=1)).jobs[0].inputs["string_input"] == "été"


def test_form_fields_that_are_not_utf8_are_an_ows_400(client):
    body = "service=WPS&request=DescribeProcess&version=1.0.0&identifier=%FF"
    r = client.post("/wps", data=body, content_type="application/x-www-form-urlencoded")
    assert r.status_code == 400 and b"identifier" in r.data
