"""Bad WPS requests get the right OWS exception code, HTTP status and a schema-valid report."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.services import Services
from tests.conftest import new_id
from tests.unit.wps_support import OWS2, OWS11, WpsApp, assert_valid, exception_code, wps_app

pytestmark = pytest.mark.unit

EXECUTE_1 = (
    '<wps:Execute xmlns:wps="http://www.opengis.net/wps/1.0.0" '
    'xmlns:ows="http://www.opengis.net/ows/1.1" service="WPS" version="1.0.0">'
    "<ows:Identifier>{process}</ows:Identifier>"
    "<wps:DataInputs>{inputs}</wps:DataInputs></wps:Execute>"
)


@pytest.fixture
def wps(services: Services) -> Iterator[WpsApp]:
    yield wps_app(services)


@pytest.mark.parametrize(
    ("query", "status", "code", "locator"),
    [
        ("", 400, "MissingParameterValue", "service"),
        ("request=GetCapabilities", 400, "MissingParameterValue", "service"),
        ("service=WFS&request=GetCapabilities", 400, "InvalidParameterValue", "service"),
        ("service=WPS", 400, "MissingParameterValue", "request"),
        ("service=WPS&request=GetMap&version=1.0.0", 501, "OperationNotSupported", "GetMap"),
        (
            "service=WPS&request=GetStatus&version=1.0.0&jobid=x",
            501,
            "OperationNotSupported",
            "GetStatus",
        ),
        (
            "service=WPS&request=DescribeProcess&identifier=echo",
            400,
            "MissingParameterValue",
            "version",
        ),
        (
            "service=WPS&request=DescribeProcess&version=1.0.0",
            400,
            "MissingParameterValue",
            "identifier",
        ),
        (
            "service=WPS&request=DescribeProcess&version=1.1.0&identifier=echo",
            400,
            "InvalidParameterValue",
            "version",
        ),
        (
            "service=WPS&request=GetCapabilities&acceptversions=0.9.0,3.0.0",
            400,
            "VersionNegotiationFailed",
            "AcceptVersions",
        ),
        (
            "service=WPS&request=GetCapabilities&version=1.1.0",
            400,
            "InvalidParameterValue",
            "version",
        ),
        ("service=WPS&request=Execute&version=1.0.0", 400, "MissingParameterValue", "identifier"),
        (
            "service=WPS&request=Execute&version=1.0.0&identifier=nope",
            400,
            "InvalidParameterValue",
            "Identifier",
        ),
        (
            "service=WPS&request=Execute&version=2.0.0&identifier=echo",
            501,
            "OperationNotSupported",
            "Execute",
        ),
        ("service=WPS&request=GetStatus&version=2.0.0", 400, "MissingParameterValue", "jobId"),
        (
            "service=WPS&request=Execute&version=1.0.0&identifier=echo&DataInputs=bogus=1",
            400,
            "InvalidParameterValue",
            "bogus",
        ),
        (
            "service=WPS&request=Execute&version=1.0.0&identifier=echo&DataInputs=integer_input=x",
            400,
            "InvalidParameterValue",
            "integer_input",
        ),
        (
            "service=WPS&request=Execute&version=1.0.0&identifier=echo&status=true",
            400,
            "InvalidParameterValue",
            "status",
        ),
        (
            "service=WPS&request=Execute&version=1.0.0&identifier=echo&ResponseDocument=nope",
            400,
            "InvalidParameterValue",
            "nope",
        ),
    ],
)
def test_kvp_errors(wps: WpsApp, query: str, status: int, code: str, locator: str) -> None:
    response = wps.client.get(f"/wps?{query}")
    assert response.status_code == status, response.data.decode()
    assert exception_code(response.data) == (code, locator)


def test_wps2_errors_use_ows2_reports(wps: WpsApp) -> None:
    response = wps.client.get(
        "/wps?service=WPS&request=DescribeProcess&version=2.0.0&identifier=nope"
    )
    root = assert_valid(response.data)
    assert root.tag == f"{{{OWS2}}}ExceptionReport" and root.get("version") == "2.0.0"
    response = wps.client.get("/wps?service=WPS&request=GetMap&version=1.0.0")
    assert assert_valid(response.data).tag == f"{{{OWS11}}}ExceptionReport"


@pytest.mark.parametrize(
    "body",
    [
        b"<wps:Execute xmlns:wps='http://www.opengis.net/wps/1.0.0'",  # truncated
        b"not xml at all",
        b"",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
    ],
)
def test_malformed_xml_is_400_not_500(wps: WpsApp, body: bytes) -> None:
    response = wps.client.post("/wps", data=body, content_type="text/xml")
    assert response.status_code == 400
    code, _ = exception_code(response.data)
    assert code == "NoApplicableCode"
    assert b"root:" not in response.data


@pytest.mark.parametrize(
    ("body", "status", "code", "locator"),
    [
        (b"<foo/>", 400, "InvalidParameterValue", "request"),
        (
            b'<wps:Frobnicate xmlns:wps="http://www.opengis.net/wps/2.0" service="WPS" '
            b'version="2.0.0"/>',
            501,
            "OperationNotSupported",
            "Frobnicate",
        ),
        (
            b'<wps:DescribeProcess xmlns:wps="http://www.opengis.net/wps/1.0.0" version="1.0.0"/>',
            400,
            "MissingParameterValue",
            "service",
        ),
        (
            b'<wps:DescribeProcess xmlns:wps="http://www.opengis.net/wps/1.0.0" service="WPS"/>',
            400,
            "MissingParameterValue",
            "version",
        ),
        (
            b'<wps:DescribeProcess xmlns:wps="http://www.opengis.net/wps/1.0.0" service="WPS" '
            b'version="2.0.0"/>',
            400,
            "InvalidParameterValue",
            "version",
        ),
        (
            b'<wps:DescribeProcess xmlns:wps="http://www.opengis.net/wps/1.0.0" service="WPS" '
            b'version="1.0.0"/>',
            400,
            "MissingParameterValue",
            "Identifier",
        ),
        (
            b'<wps:GetStatus xmlns:wps="http://www.opengis.net/wps/2.0" service="WPS" '
            b'version="2.0.0"/>',
            400,
            "MissingParameterValue",
            "JobID",
        ),
        (
            b'<wps:Execute xmlns:wps="http://www.opengis.net/wps/2.0" '
            b'xmlns:ows="http://www.opengis.net/ows/2.0" service="WPS" version="2.0.0" '
            b'response="document"><ows:Identifier>echo</ows:Identifier></wps:Execute>',
            400,
            "MissingParameterValue",
            "mode",
        ),
        (
            b'<wps:Execute xmlns:wps="http://www.opengis.net/wps/2.0" '
            b'xmlns:ows="http://www.opengis.net/ows/2.0" service="WPS" version="2.0.0" '
            b'response="document" mode="sometimes"><ows:Identifier>echo</ows:Identifier>'
            b"</wps:Execute>",
            400,
            "InvalidParameterValue",
            "mode",
        ),
        (
            b'<wps:Execute xmlns:wps="http://www.opengis.net/wps/2.0" '
            b'xmlns:ows="http://www.opengis.net/ows/2.0" service="WPS" version="2.0.0" '
            b'response="document" mode="async"><ows:Identifier>nope</ows:Identifier>'
            b"</wps:Execute>",
            404,
            "NoSuchProcess",
            None,
        ),
        (
            b'<wps:Execute xmlns:wps="http://www.opengis.net/wps/2.0" '
            b'xmlns:ows="http://www.opengis.net/ows/2.0" service="WPS" version="2.0.0" '
            b'response="document" mode="async"><ows:Identifier>echo</ows:Identifier>'
            b'<wps:Input id="nope"><wps:Data>1</wps:Data></wps:Input></wps:Execute>',
            400,
            "NoSuchInput",
            "nope",
        ),
    ],
)
def test_xml_request_errors(
    wps: WpsApp, body: bytes, status: int, code: str, locator: str | None
) -> None:
    response = wps.client.post("/wps", data=body, content_type="text/xml")
    assert response.status_code == status, response.data.decode()
    assert exception_code(response.data) == (code, locator)


def test_execute_invalid_input_value_1(wps: WpsApp) -> None:
    body = EXECUTE_1.format(
        process="echo",
        inputs="<wps:Input><ows:Identifier>pause</ows:Identifier>"
        "<wps:Data><wps:LiteralData>9999</wps:LiteralData></wps:Data></wps:Input>",
    )
    response = wps.client.post("/wps", data=body.encode(), content_type="text/xml")
    assert response.status_code == 400
    code, _ = exception_code(response.data)
    assert code == "InvalidParameterValue"  # from the job service's schema validation
    assert b"pause" in response.data


def test_missing_required_input(wps: WpsApp) -> None:
    response = wps.client.get(
        "/wps?service=WPS&request=Execute&version=1.0.0&identifier=ndvi&DataInputs=red_band=3"
    )
    assert response.status_code == 400
    assert exception_code(response.data)[0] == "InvalidParameterValue"
    assert b"image" in response.data


@pytest.mark.parametrize("operation", ["GetStatus", "GetResult", "Dismiss"])
def test_unknown_job(wps: WpsApp, operation: str) -> None:
    for job_id in (new_id(), "not-a-uuid"):
        response = wps.client.get(
            f"/wps?service=WPS&request={operation}&version=2.0.0&jobid={job_id}"
        )
        assert response.status_code == 404
        assert exception_code(response.data) == ("NoSuchJob", job_id)


def test_unknown_job_status_location(wps: WpsApp) -> None:
    response = wps.client.get(f"/wps/status/{new_id()}")
    assert response.status_code == 404
    assert exception_code(response.data)[0] == "NoSuchJob"


def test_authentication_failure_is_an_ows_report(wps: WpsApp) -> None:
    response = wps.client.get(
        f"/wps?service=WPS&request=GetStatus&version=2.0.0&jobid={new_id()}",
        headers={"X-Test-User": "mallory"},
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert exception_code(response.data)[0] == "NoApplicableCode"


def test_oversized_body_is_413(wps: WpsApp) -> None:
    wps.app.config["MAX_CONTENT_LENGTH"] = 100
    response = wps.client.post("/wps", data=b"<x>" + b"a" * 1000 + b"</x>", content_type="text/xml")
    assert response.status_code == 413
    assert exception_code(response.data)[0] == "NoApplicableCode"


def test_errors_from_app_wide_hooks_become_ows_reports(services: Services) -> None:
    """The OGC API authenticates in an app-wide before_request; /wps must still speak OWS."""
    from gateway.errors import Unauthorized

    wps = wps_app(services)

    @wps.app.before_request
    def _deny() -> None:
        raise Unauthorized("missing bearer token", headers={"WWW-Authenticate": "Bearer"})

    response = wps.client.get("/wps?service=WPS&request=GetCapabilities&acceptversions=2.0.0")
    assert response.status_code == 401
    root = assert_valid(response.data)
    assert root.tag == f"{{{OWS2}}}ExceptionReport"
    response = wps.client.post(
        "/wps",
        data=b'<wps:GetCapabilities xmlns:wps="http://www.opengis.net/wps/1.0.0" service="WPS"/>',
        content_type="text/xml",
    )
    assert response.status_code == 401
    assert assert_valid(response.data).tag == f"{{{OWS11}}}ExceptionReport"
