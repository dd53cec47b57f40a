"""WPS Execute, status documents and the WPS 2.0 job operations over the shared job service.

A :class:`FakeEchoWorker` finishes jobs where a test needs results without
Slurm; the real-cluster path is covered by ``tests/integration/test_wps_owslib.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from gateway.jobs.records import JobUpdate
from gateway.jobs.states import JobState
from gateway.services import Services
from tests.unit.test_egress import resolver as offline_resolver
from tests.unit.wps_support import (
    ALICE,
    BOB,
    NS,
    FakeEchoWorker,
    WpsApp,
    assert_valid,
    exception_code,
    wps_app,
)

pytestmark = pytest.mark.unit

BASE = "http://127.0.0.1:5000"
HEAD_1 = (
    '<wps:Execute xmlns:wps="http://www.opengis.net/wps/1.0.0" '
    'xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink" '
    'service="WPS" version="1.0.0"><ows:Identifier>echo</ows:Identifier>'
)
HEAD_2 = (
    '<wps:Execute xmlns:wps="http://www.opengis.net/wps/2.0" '
    'xmlns:ows="http://www.opengis.net/ows/2.0" xmlns:xlink="http://www.w3.org/1999/xlink" '
    'service="WPS" version="2.0.0" mode="{mode}" response="{response}">'
    "<ows:Identifier>echo</ows:Identifier>"
)


def literal_1(name: str, value: str) -> str:
    return (
        f"<wps:Input><ows:Identifier>{name}</ows:Identifier>"
        f"<wps:Data><wps:LiteralData>{value}</wps:LiteralData></wps:Data></wps:Input>"
    )


ASYNC_1 = (
    HEAD_1
    + "<wps:DataInputs>"
    + literal_1("string_input", "hi &amp; bye")
    + literal_1("integer_input", "7")
    + "<wps:Input><ows:Identifier>xml_input</ows:Identifier><wps:Data>"
    '<wps:ComplexData mimeType="text/xml"><doc xmlns="urn:x"><v>1</v></doc></wps:ComplexData>'
    "</wps:Data></wps:Input>"
    "<wps:Input><ows:Identifier>bounding_box_input</ows:Identifier><wps:Data>"
    '<wps:BoundingBoxData crs="EPSG:4326" dimensions="2">'
    "<ows:LowerCorner>1 2</ows:LowerCorner><ows:UpperCorner>3 4</ows:UpperCorner>"
    "</wps:BoundingBoxData></wps:Data></wps:Input>"
    "</wps:DataInputs>"
    '<wps:ResponseForm><wps:ResponseDocument storeExecuteResponse="true" status="true">'
    '<wps:Output asReference="false"><ows:Identifier>string_output</ows:Identifier></wps:Output>'
    "<wps:Output><ows:Identifier>xml_output</ows:Identifier></wps:Output>"
    "<wps:Output><ows:Identifier>integer_output</ows:Identifier></wps:Output>"
    "<wps:Output><ows:Identifier>bounding_box_output</ows:Identifier></wps:Output>"
    "</wps:ResponseDocument></wps:ResponseForm></wps:Execute>"
)


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, object]:
    """References checked against an offline resolver and never probed (no DNS here)."""
    return {
        "workflow": {"egress": {"probe_references": False}, "cache": {"root": str(tmp_path / "c")}}
    }


@pytest.fixture(autouse=True)
def offline_references(services: Services) -> None:
    services.egress.resolver = offline_resolver


@pytest.fixture
def wps(services: Services) -> Iterator[WpsApp]:
    yield wps_app(services)


def post(wps: WpsApp, body: str, user: str = "alice") -> tuple[int, bytes]:
    response = wps.client.post(
        "/wps", data=body.encode(), content_type="text/xml", headers={"X-Test-User": user}
    )
    return response.status_code, response.data


def status_path(root: etree._Element) -> str:
    location = root.get("statusLocation") or ""
    assert location.startswith(f"{BASE}/wps/status/")
    return location.removeprefix(BASE)


def test_async_execute_1_is_accepted_and_shared_with_ogc_api(wps: WpsApp) -> None:
    status, body = post(wps, ASYNC_1)
    assert status == 200, body.decode()
    root = assert_valid(body)
    assert root.xpath("wps:Status/wps:ProcessAccepted", namespaces=NS)
    job_id = status_path(root).rsplit("/", 1)[-1]
    job = wps.services.jobs.get(ALICE, job_id)  # the OGC API side sees the same job
    assert job.interface == "wps1" and job.state is JobState.ACCEPTED
    assert job.inputs["string_input"] == "hi & bye"
    assert job.inputs["integer_input"] == 7
    assert etree.fromstring(job.inputs["xml_input"]).tag == "{urn:x}doc"
    assert job.inputs["bounding_box_input"] == {"bbox": [1.0, 2.0, 3.0, 4.0], "crs": "EPSG:4326"}
    assert set(job.outputs_request or {}) == {
        "string_output",
        "xml_output",
        "integer_output",
        "bounding_box_output",
    }


def test_status_location_follows_the_job(wps: WpsApp) -> None:
    _, body = post(wps, ASYNC_1)
    path = status_path(assert_valid(body))
    job_id = path.rsplit("/", 1)[-1]
    store = wps.services.store

    store.transition(job_id, JobState.RUNNING, JobUpdate(progress=40, message="pausing"))
    root = assert_valid(wps.client.get(path).data)
    started = root.xpath("wps:Status/wps:ProcessStarted", namespaces=NS)[0]
    assert started.get("percentCompleted") == "40" and started.text == "pausing"

    job = store.get(job_id)
    results = {
        "string_output": job.inputs["string_input"],
        "integer_output": 7,
        "xml_output": job.inputs["xml_input"],
        "bounding_box_output": job.inputs["bounding_box_input"],
        "object_output": {"a": [1, 2]},
        "boolean_output": True,
        "number_output": {
            "href": f"{BASE}/jobs/{job_id}/outputs/n.json",
            "type": "application/json",
        },
    }
    store.transition(job_id, JobState.SUCCESSFUL, JobUpdate(results=results, progress=100))
    response = wps.client.get(path)
    assert response.headers["Cache-Control"] == "no-store"
    root = assert_valid(response.data)
    assert root.xpath("wps:Status/wps:ProcessSucceeded", namespaces=NS)

    def output(name: str) -> etree._Element:
        return root.xpath(f"wps:ProcessOutputs/wps:Output[ows:Identifier='{name}']", namespaces=NS)[
            0
        ]

    literal = output("string_output").xpath("wps:Data/wps:LiteralData", namespaces=NS)[0]
    assert (literal.text, literal.get("dataType")) == ("hi & bye", "string")
    assert output("integer_output").xpath("wps:Data/wps:LiteralData/text()", namespaces=NS) == ["7"]
    assert output("boolean_output").xpath("wps:Data/wps:LiteralData/text()", namespaces=NS) == [
        "true"
    ]
    xml = output("xml_output").xpath("wps:Data/wps:ComplexData", namespaces=NS)[0]
    assert xml.get("mimeType") == "application/xml"
    assert xml[0].tag == "{urn:x}doc"  # echoed as XML, not as escaped text
    box = output("bounding_box_output").xpath("wps:Data/wps:BoundingBoxData", namespaces=NS)[0]
    assert box.get("crs") == "EPSG:4326"
    assert box.xpath("ows:LowerCorner/text()", namespaces=NS) == ["1.0 2.0"]
    obj = output("object_output").xpath("wps:Data/wps:ComplexData", namespaces=NS)[0]
    assert obj.get("mimeType") == "application/json" and obj.text == '{"a": [1, 2]}'
    ref = output("number_output").xpath("wps:Reference", namespaces=NS)[0]
    assert ref.get("href").endswith("/outputs/n.json")


def test_failed_job_status_has_exception_report(wps: WpsApp) -> None:
    _, body = post(wps, ASYNC_1)
    path = status_path(assert_valid(body))
    job_id = path.rsplit("/", 1)[-1]
    detail = "Slurm job 12 failed (exit code 3). Last lines of stderr:\n\x1b[31mboom\x00"
    wps.services.store.transition(
        job_id, JobState.FAILED, JobUpdate(message=detail, error={"detail": detail})
    )
    root = assert_valid(wps.client.get(path).data)
    text = root.xpath(
        "//wps:ProcessFailed/ows:ExceptionReport/ows:Exception/ows:ExceptionText", namespaces=NS
    )[0].text
    assert "exit code 3" in text and "boom" in text


def test_other_users_job_is_no_such_job(wps: WpsApp) -> None:
    _, body = post(wps, ASYNC_1, user="alice")
    path = status_path(assert_valid(body))
    job_id = path.rsplit("/", 1)[-1]
    response = wps.client.get(path, headers={"X-Test-User": "bob"})
    assert response.status_code == 404
    assert exception_code(response.data)[0] == "NoSuchJob"
    for op in ("GetStatus", "GetResult", "Dismiss"):
        response = wps.client.get(
            f"/wps?service=WPS&version=2.0.0&request={op}&jobId={job_id}",
            headers={"X-Test-User": "bob"},
        )
        assert response.status_code == 404
        assert exception_code(response.data) == ("NoSuchJob", job_id)
    assert wps.services.jobs.get(ALICE, job_id).state is JobState.ACCEPTED


def test_lineage_echoes_inputs_and_output_definitions(wps: WpsApp) -> None:
    body = ASYNC_1.replace('status="true"', 'status="true" lineage="true"')
    status, data = post(wps, body)
    assert status == 200
    root = assert_valid(data)
    ids = root.xpath("wps:DataInputs/wps:Input/ows:Identifier/text()", namespaces=NS)
    assert set(ids) == {"string_input", "integer_input", "xml_input", "bounding_box_input"}
    assert root.xpath("wps:OutputDefinitions/wps:Output", namespaces=NS)
    assert root.get("statusLocation", "").endswith("?lineage=true")
    assert assert_valid(wps.client.get(status_path(root)).data).xpath(
        "wps:DataInputs", namespaces=NS
    )


def test_kvp_execute_with_reference_and_bbox(wps: WpsApp) -> None:
    query = (
        "service=WPS&request=Execute&version=1.0.0&identifier=echo"
        "&DataInputs=xml_input=@xlink:href=https%3A%2F%2Fdata.example.org%2Fa.xml@mimeType=text/xml;"
        "bounding_box_input=1,2,3,4,urn:ogc:def:crs:EPSG::4326;boolean_input=true"
        "&storeExecuteResponse=true&status=true"
    )
    response = wps.client.get(f"/wps?{query}")
    assert response.status_code == 200, response.data.decode()
    job_id = status_path(assert_valid(response.data)).rsplit("/", 1)[-1]
    job = wps.services.jobs.get(ALICE, job_id)
    assert job.inputs["xml_input"] == {"href": "https://data.example.org/a.xml", "type": "text/xml"}
    assert job.inputs["bounding_box_input"] == {
        "bbox": [1.0, 2.0, 3.0, 4.0],
        "crs": "urn:ogc:def:crs:EPSG::4326",
    }
    assert job.inputs["boolean_input"] is True


def test_sync_execute_1_document_raw_and_reference(wps: WpsApp) -> None:
    base = "/wps?service=WPS&request=Execute&version=1.0.0&identifier=echo"
    with FakeEchoWorker(wps.services):
        doc = wps.client.get(f"{base}&DataInputs=string_input=hello;number_input=1.5")
        root = assert_valid(doc.data)
        assert root.get("statusLocation") is None
        values = root.xpath("//wps:Output/wps:Data/wps:LiteralData/text()", namespaces=NS)
        assert sorted(values) == ["1.5", "hello"]

        raw = wps.client.get(f"{base}&DataInputs=string_input=hello&RawDataOutput=string_output")
        assert (raw.status_code, raw.mimetype, raw.data) == (200, "text/plain", b"hello")

        xml_in = "%3Ca%3E%3Cb%3E1%3C%2Fb%3E%3C%2Fa%3E"
        raw = wps.client.get(f"{base}&DataInputs=xml_input={xml_in}&RawDataOutput=xml_output")
        assert raw.mimetype == "application/xml" and raw.data == b"<a><b>1</b></a>"

        ref = wps.client.get(
            f"{base}&DataInputs=integer_input=3&ResponseDocument=integer_output@asReference=true"
        )
        href = assert_valid(ref.data).xpath("//wps:Reference/@href", namespaces=NS)[0]
        assert href.startswith(f"{BASE}/jobs/")
        raw = wps.client.get(
            f"{base}&DataInputs=integer_input=3&RawDataOutput=integer_output@asReference=true"
        )
        assert raw.status_code == 200


def test_sync_execute_times_out_into_a_status_location(wps: WpsApp) -> None:
    wps.services.settings.server.sync_timeout_seconds = 0.2
    response = wps.client.get(
        "/wps?service=WPS&request=Execute&version=1.0.0&identifier=echo&DataInputs=string_input=x"
    )
    root = assert_valid(response.data)
    assert root.xpath("wps:Status/wps:ProcessAccepted", namespaces=NS)
    assert root.get("statusLocation")


# -- WPS 2.0.0 ---------------------------------------------------------------------------


def execute_2(mode: str, response: str, inputs: str, outputs: str = "") -> str:
    return HEAD_2.format(mode=mode, response=response) + inputs + outputs + "</wps:Execute>"


def test_wps2_async_execute_get_status_get_result(wps: WpsApp) -> None:
    body = execute_2(
        "async",
        "document",
        '<wps:Input id="string_input"><wps:Data>hello</wps:Data></wps:Input>',
        '<wps:Output id="string_output" transmission="value"/>',
    )
    status, data = post(wps, body)
    assert status == 200
    info = assert_valid(data)
    assert info.xpath("wps2:Status/text()", namespaces=NS) == ["Accepted"]
    job_id = info.xpath("wps2:JobID/text()", namespaces=NS)[0]
    assert wps.services.jobs.get(ALICE, job_id).interface == "wps2"

    not_ready = wps.client.get(f"/wps?service=WPS&version=2.0.0&request=GetResult&jobId={job_id}")
    assert not_ready.status_code == 404
    assert exception_code(not_ready.data) == ("ResultNotReady", job_id)

    wps.services.store.transition(job_id, JobState.RUNNING, JobUpdate(progress=30))
    get_status = (
        '<wps:GetStatus xmlns:wps="http://www.opengis.net/wps/2.0" service="WPS" '
        f'version="2.0.0"><wps:JobID>{job_id}</wps:JobID></wps:GetStatus>'
    )
    info = assert_valid(post(wps, get_status)[1])
    assert info.xpath("wps2:Status/text()", namespaces=NS) == ["Running"]
    assert info.xpath("wps2:PercentCompleted/text()", namespaces=NS) == ["30"]

    FakeEchoWorker(wps.services).finish(wps.services.store.get(job_id))
    result = wps.client.get(f"/wps?service=WPS&version=2.0.0&request=GetResult&jobId={job_id}")
    root = assert_valid(result.data)
    assert root.xpath(
        "wps2:Output[@id='string_output']/wps2:Data/wps2:LiteralValue/text()", namespaces=NS
    ) == ["hello"]


def test_wps2_sync_like_the_conformance_suite(wps: WpsApp) -> None:
    literal = (
        '<wps:Input id="string_input"><wps:Data><wps:LiteralValue>hello_literal'
        "</wps:LiteralValue></wps:Data></wps:Input>"
    )
    complex_ = (
        '<wps:Input id="xml_input"><wps:Data><wps:ComplexData>'
        "<testElement>hello_complex</testElement></wps:ComplexData></wps:Data></wps:Input>"
    )
    with FakeEchoWorker(wps.services):
        status, data = post(
            wps,
            execute_2(
                "sync", "document", literal, '<wps:Output id="string_output" transmission="value"/>'
            ),
        )
        assert status == 200 and b"hello_literal" in data
        assert etree.QName(assert_valid(data)).localname == "Result"

        status, data = post(
            wps,
            execute_2(
                "sync", "raw", literal, '<wps:Output id="string_output" transmission="value"/>'
            ),
        )
        assert (status, data) == (200, b"hello_literal")

        status, data = post(
            wps,
            execute_2(
                "sync", "document", complex_, '<wps:Output id="xml_output" transmission="value"/>'
            ),
        )
        root = assert_valid(data)
        assert root.xpath("//wps2:Data/testElement/text()", namespaces=NS) == ["hello_complex"]

        status, data = post(
            wps,
            execute_2(
                "sync", "raw", complex_, '<wps:Output id="xml_output" transmission="value"/>'
            ),
        )
        assert data == b"<testElement>hello_complex</testElement>"

        status, data = post(
            wps,
            execute_2(
                "sync",
                "document",
                literal,
                '<wps:Output id="string_output" transmission="reference"/>',
            ),
        )
        href = assert_valid(data).xpath("//wps2:Reference/@xlink:href", namespaces=NS)[0]
        assert href.startswith(f"{BASE}/jobs/")


def test_wps2_auto_mode_and_dismiss(wps: WpsApp) -> None:
    body = execute_2("auto", "document", '<wps:Input id="pause"><wps:Data>5</wps:Data></wps:Input>')
    info = assert_valid(post(wps, body)[1])
    job_id = info.xpath("wps2:JobID/text()", namespaces=NS)[0]
    dismiss = wps.client.get(f"/wps?service=WPS&version=2.0.0&request=Dismiss&jobId={job_id}")
    info = assert_valid(dismiss.data)
    assert info.xpath("wps2:Status/text()", namespaces=NS) == ["Dismissed"]
    # WPS 2.0 (9.10, Dismiss): the job is forgotten -- GetStatus, GetResult and a
    # second Dismiss answer NoSuchJob in a schema-valid OWS 2.0 report ...
    for operation in ("GetStatus", "GetResult", "Dismiss"):
        gone = wps.client.get(f"/wps?service=WPS&version=2.0.0&request={operation}&jobId={job_id}")
        assert gone.status_code == 404, operation
        assert exception_code(gone.data) == ("NoSuchJob", job_id), operation
    # ... while the OGC API keeps its rule: the dismissed job's status says dismissed
    assert wps.services.jobs.get(ALICE, job_id).state is JobState.DISMISSED


def test_wps2_dismiss_of_a_finished_job_removes_it(wps: WpsApp) -> None:
    """Like the OGC API's DELETE: answered 'Dismissed', then the job is gone for both APIs."""
    job = wps.services.jobs.submit(ALICE, "echo", {"inputs": {"string_input": "x"}})
    FakeEchoWorker(wps.services).finish(job)
    kvp = f"/wps?service=WPS&version=2.0.0&jobId={job.id}&request="
    dismiss = wps.client.get(kvp + "Dismiss")
    info = assert_valid(dismiss.data)
    assert info.xpath("wps2:Status/text()", namespaces=NS) == ["Dismissed"]
    for operation in ("GetStatus", "GetResult", "Dismiss"):
        gone = wps.client.get(kvp + operation)
        assert exception_code(gone.data) == ("NoSuchJob", job.id), operation
    gone_1 = wps.client.get(f"/wps/status/{job.id}")
    assert exception_code(gone_1.data)[0] == "NoSuchJob"
    assert wps.services.store.get(job.id).state is JobState.REMOVED


def test_wps2_get_status_of_an_ogc_api_job(wps: WpsApp) -> None:
    job = wps.services.jobs.submit(BOB, "echo", {"inputs": {"string_input": "x"}})
    response = wps.client.get(
        f"/wps?service=WPS&version=2.0.0&request=GetStatus&jobId={job.id}",
        headers={"X-Test-User": "bob"},
    )
    info = assert_valid(response.data)
    assert info.xpath("wps2:JobID/text()", namespaces=NS) == [job.id]
    assert info.xpath("wps2:Status/text()", namespaces=NS) == ["Accepted"]


def test_wps2_failed_job_result_is_an_exception(wps: WpsApp) -> None:
    body = execute_2(
        "sync", "document", '<wps:Input id="exit_code"><wps:Data>3</wps:Data></wps:Input>'
    )
    with FakeEchoWorker(wps.services):
        status, data = post(wps, body)
    assert status == 500
    code, _ = exception_code(data)
    assert code == "NoApplicableCode" and b"failing as requested" in data


def test_binary_content_is_base64_in_documents_and_bytes_when_raw(wps: WpsApp) -> None:
    """contentEncoding base64: ComplexData encoding="base64" in the (XSD-valid) document,
    the decoded bytes in a RawDataOutput."""
    base = "/wps?service=WPS&request=Execute&version=1.0.0&identifier=echo"
    inputs = "&DataInputs=binary_input=AAEC%2Fw%3D%3D"
    with FakeEchoWorker(wps.services):
        doc = wps.client.get(base + inputs)
        raw = wps.client.get(base + inputs + "&RawDataOutput=binary_output")
    data = assert_valid(doc.data).xpath("//wps:Output/wps:Data/wps:ComplexData", namespaces=NS)[0]
    assert (data.get("encoding"), data.get("mimeType"), data.text) == (
        "base64",
        "application/octet-stream",
        "AAEC/w==",
    )
    assert (raw.mimetype, raw.data) == ("application/octet-stream", b"\x00\x01\x02\xff")
