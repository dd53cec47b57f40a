"""WPS GetCapabilities and DescribeProcess (1.0.0 and 2.0.0), validated against the XSDs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.services import Services
from tests.unit.wps_support import NS, WpsApp, assert_valid, exception_code, wps_app

pytestmark = pytest.mark.unit


@pytest.fixture
def wps(services: Services) -> Iterator[WpsApp]:
    yield wps_app(services)


def _get(wps: WpsApp, query: str) -> bytes:
    response = wps.client.get(f"/wps?{query}")
    assert response.status_code == 200, response.data.decode()
    assert response.mimetype == "text/xml"
    return response.data


def test_capabilities_1_lists_processes_and_operations(wps: WpsApp) -> None:
    root = assert_valid(_get(wps, "service=WPS&request=GetCapabilities&version=1.0.0"))
    assert root.get("version") == "1.0.0"
    ids = root.xpath("wps:ProcessOfferings/wps:Process/ows:Identifier/text()", namespaces=NS)
    assert {"echo", "ndvi"} <= set(ids)
    ops = root.xpath("ows:OperationsMetadata/ows:Operation/@name", namespaces=NS)
    assert ops == ["GetCapabilities", "DescribeProcess", "Execute"]
    href = root.xpath("//ows:Get/@xlink:href", namespaces=NS)[0]
    assert href == "http://127.0.0.1:5000/wps"


def test_capabilities_2_has_job_control_options(wps: WpsApp) -> None:
    root = assert_valid(_get(wps, "service=WPS&request=GetCapabilities&acceptversions=2.0.0"))
    assert root.get("version") == "2.0.0"
    summary = root.xpath(
        "wps2:Contents/wps2:ProcessSummary[ows2:Identifier='echo']", namespaces=NS
    )[0]
    assert summary.get("jobControlOptions") == "sync-execute async-execute dismiss"
    assert summary.get("outputTransmission") == "value reference"
    ops = root.xpath("ows2:OperationsMetadata/ows2:Operation/@name", namespaces=NS)
    assert {"GetStatus", "GetResult", "Dismiss"} <= set(ops)


@pytest.mark.parametrize(
    ("query", "version"),
    [
        ("acceptversions=3.0.0,1.0.0", "1.0.0"),
        ("AcceptVersions=2.0.0,1.0.0", "2.0.0"),
        ("", "2.0.0"),  # no preference: the newest
    ],
)
def test_version_negotiation(wps: WpsApp, query: str, version: str) -> None:
    root = assert_valid(_get(wps, f"service=WPS&request=GetCapabilities&{query}"))
    assert root.get("version") == version


def test_capabilities_by_post(wps: WpsApp) -> None:
    body = (
        b'<wps:GetCapabilities xmlns:wps="http://www.opengis.net/wps/1.0.0" '
        b'xmlns:ows="http://www.opengis.net/ows/1.1" service="WPS">'
        b"<wps:AcceptVersions><ows:Version>1.0.0</ows:Version></wps:AcceptVersions>"
        b"</wps:GetCapabilities>"
    )
    response = wps.client.post("/wps", data=body, content_type="text/xml")
    assert response.status_code == 200
    assert assert_valid(response.data).get("version") == "1.0.0"


def test_describe_echo_1_maps_schemas_to_wps_kinds(wps: WpsApp) -> None:
    root = assert_valid(
        _get(wps, "service=WPS&request=DescribeProcess&version=1.0.0&identifier=echo")
    )
    desc = root.xpath("ProcessDescription", namespaces=NS)[0]
    assert desc.get("storeSupported") == "true" and desc.get("statusSupported") == "true"

    def input_(name: str) -> object:
        return desc.xpath(f"DataInputs/Input[ows:Identifier='{name}']", namespaces=NS)[0]

    types = {
        name: input_(name).xpath("LiteralData/ows:DataType/text()", namespaces=NS)
        for name in ("string_input", "number_input", "integer_input", "boolean_input")
    }
    assert types == {
        "string_input": ["string"],
        "number_input": ["double"],
        "integer_input": ["integer"],
        "boolean_input": ["boolean"],
    }
    xml_in = input_("xml_input").xpath("ComplexData/Default/Format/MimeType/text()", namespaces=NS)
    assert xml_in == ["application/xml"]
    obj = input_("object_input").xpath("ComplexData//MimeType/text()", namespaces=NS)
    assert set(obj) == {"application/json"}
    bbox = input_("bounding_box_input").xpath("BoundingBoxData/Default/CRS/text()", namespaces=NS)
    assert bbox == ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"]
    pause = input_("pause")
    assert pause.xpath(
        "LiteralData/ows:AllowedValues/ows:Range/ows:MaximumValue/text()", namespaces=NS
    ) == ["240"]
    assert pause.xpath("LiteralData/DefaultValue/text()", namespaces=NS) == ["0"]
    outputs = desc.xpath("ProcessOutputs/Output/ows:Identifier/text()", namespaces=NS)
    assert "xml_output" in outputs and "bounding_box_output" in outputs
    assert desc.xpath(
        "ProcessOutputs/Output[ows:Identifier='bounding_box_output']/BoundingBoxOutput",
        namespaces=NS,
    )


def test_describe_ndvi_both_versions(wps: WpsApp) -> None:
    root1 = assert_valid(
        _get(wps, "service=WPS&request=DescribeProcess&version=1.0.0&identifier=ndvi")
    )
    image = root1.xpath(
        "//Input[ows:Identifier='image']/ComplexData/Default/Format/MimeType/text()",
        namespaces=NS,
    )
    assert image == ["image/tiff; application=geotiff"]
    assert root1.xpath("//Input[ows:Identifier='image']/@minOccurs", namespaces=NS) == ["1"]
    png = root1.xpath(
        "//Output[ows:Identifier='quicklook']/ComplexOutput//MimeType/text()", namespaces=NS
    )
    assert set(png) == {"image/png"}

    root2 = assert_valid(
        _get(wps, "service=WPS&request=DescribeProcess&version=2.0.0&identifier=ndvi")
    )
    offering = root2.xpath("wps2:ProcessOffering", namespaces=NS)[0]
    assert offering.get("processVersion") == "1.0.0"
    formats = offering.xpath(
        "wps2:Process/wps2:Input[ows2:Identifier='image']/wps2:ComplexData/wps2:Format/@mimeType",
        namespaces=NS,
    )
    assert formats == ["image/tiff; application=geotiff"]


def test_describe_several_and_all(wps: WpsApp) -> None:
    root = assert_valid(
        _get(wps, "service=WPS&request=DescribeProcess&version=2.0.0&identifier=echo,ndvi")
    )
    assert len(root.xpath("wps2:ProcessOffering", namespaces=NS)) == 2
    root = assert_valid(
        _get(wps, "service=WPS&request=DescribeProcess&version=1.0.0&identifier=all")
    )
    assert len(root.xpath("ProcessDescription")) == len(wps.services.registry)


def test_describe_by_post_2(wps: WpsApp) -> None:
    body = (
        b'<wps:DescribeProcess xmlns:wps="http://www.opengis.net/wps/2.0" '
        b'xmlns:ows="http://www.opengis.net/ows/2.0" service="WPS" version="2.0.0">'
        b"<ows:Identifier>echo</ows:Identifier></wps:DescribeProcess>"
    )
    response = wps.client.post("/wps", data=body, content_type="application/xml")
    assert response.status_code == 200
    root = assert_valid(response.data)
    literal = root.xpath(
        "//wps2:Input[ows2:Identifier='string_input']/wps2:LiteralData/LiteralDataDomain",
        namespaces=NS,
    )
    assert literal


def test_describe_unknown_process(wps: WpsApp) -> None:
    r1 = wps.client.get("/wps?service=WPS&request=DescribeProcess&version=1.0.0&identifier=nope")
    assert r1.status_code == 400
    assert exception_code(r1.data) == ("InvalidParameterValue", "Identifier")
    r2 = wps.client.get("/wps?service=WPS&request=DescribeProcess&version=2.0.0&identifier=nope")
    assert r2.status_code == 404
    assert exception_code(r2.data) == ("NoSuchProcess", "nope")


def test_describe_echo_input_kinds_in_both_versions(wps: WpsApp) -> None:
    """The array, base64, inline-or-reference and enum inputs, schema-valid in 1.0 and 2.0."""
    one = assert_valid(
        _get(wps, "service=WPS&request=DescribeProcess&version=1.0.0&identifier=echo")
    )

    def input_1(name: str) -> str:
        return f"//Input[ows:Identifier='{name}']"

    binary = one.xpath(f"{input_1('binary_input')}/ComplexData/Default/Format", namespaces=NS)[0]
    assert binary.findtext("MimeType") == "application/octet-stream"
    assert binary.findtext("Encoding") == "base64"
    mime = one.xpath(f"{input_1('array_input')}//Default/Format/MimeType/text()", namespaces=NS)
    assert mime == ["application/json"]
    mime = one.xpath(f"{input_1('mixed_input')}//Default/Format/MimeType/text()", namespaces=NS)
    assert mime == ["text/plain"]
    allowed = one.xpath(
        f"{input_1('enum_input')}//ows:AllowedValues/ows:Value/text()", namespaces=NS
    )
    assert allowed == ["Value1", "Value2", "Value3"]

    two = assert_valid(
        _get(wps, "service=WPS&request=DescribeProcess&version=2.0.0&identifier=echo")
    )
    fmt = two.xpath("//wps2:Input[ows2:Identifier='binary_input']//wps2:Format", namespaces=NS)[0]
    assert (fmt.get("mimeType"), fmt.get("encoding")) == ("application/octet-stream", "base64")
