"""OWSLib's ``WebProcessingService`` (WPS 1.0.0) as a real client on the real dev Slurm cluster.

The gateway runs in-process behind werkzeug's HTTP server on a free port,
with a background worker; OWSLib lists the processes, describes echo and
NDVI, runs both asynchronously (``monitorExecution``), downloads outputs
(``getOutput``), and the same jobs are checked through the job service (the
OGC API side). Every WPS document OWSLib receives is also checked against
the official XSDs.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
from flask import Flask, request
from lxml import etree
from owslib.wps import (
    ASYNC,
    BoundingBoxDataInput,
    ComplexDataInput,
    WebProcessingService,
    WPSExecution,
    monitorExecution,
)
from werkzeug.serving import make_server

from gateway.app import build_services, start_background_worker
from gateway.identity.auth import NoAuth, Principal
from gateway.jobs.states import JobState
from gateway.services import Services
from tests.conftest import make_settings, sacct_field
from tests.polling import eventually
from tests.unit.wps_support import assert_valid

pytestmark = pytest.mark.slurm

TOKEN = "Bearer test-token-for-owslib"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Gateway:
    url: str
    services: Services
    principal: Principal
    seen_authorization: list[str]
    #: The OGC API routes are mounted too (create_app), so /jobs answers.
    ogcapi: bool


def _app(services: Services, seen: list[str]) -> tuple[Flask, bool]:
    try:
        from gateway.app import create_app

        app, ogcapi = create_app(services.settings, services), True
    except ImportError:  # the OGC API surface is not importable: WPS alone
        from gateway.wps import register_wps

        app, ogcapi = Flask("wps-only"), False
        register_wps(app, services, NoAuth(services.settings.auth))

    @app.before_request
    def _record_authorization() -> None:
        if request.path.startswith("/wps"):
            seen.append(request.headers.get("Authorization", ""))

    @app.after_request
    def _validate(response):  # type: ignore[no-untyped-def]
        if request.path.startswith("/wps") and response.mimetype == "text/xml":
            assert_valid(response.get_data())
        return response

    return app, ogcapi


@pytest.fixture
def gateway(cluster: str, tmp_path: Path) -> Iterator[Gateway]:
    port = free_port()
    settings = make_settings(
        tmp_path, server={"base_url": f"http://127.0.0.1:{port}", "sync_timeout_seconds": 60}
    )
    services = build_services(settings)
    seen: list[str] = []
    app, ogcapi = _app(services, seen)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    worker, stop = start_background_worker(services)
    principal = NoAuth(settings.auth).authenticate({})
    yield Gateway(f"http://127.0.0.1:{port}", services, principal, seen, ogcapi)
    stop.set()
    worker.join(timeout=10)
    server.shutdown()
    thread.join(timeout=10)
    services.close()


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "served"
    root.mkdir()
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


def monitor(execution: WPSExecution, timeout: float = 180) -> list[tuple[str, int]]:
    """``monitorExecution`` with a deadline; returns the (status, percent) seen."""
    statuses = [(execution.status, execution.percentCompleted)]

    def complete() -> bool:
        if execution.isComplete():
            return True
        execution.checkStatus(sleepSecs=0.5)
        statuses.append((execution.status, execution.percentCompleted))
        return False

    eventually(complete, timeout, lambda: f"the WPS execution to complete ({execution.status})")
    monitorExecution(execution, sleepSecs=1)  # complete now: OWSLib's own finishing steps
    return statuses


def test_owslib_lists_describes_and_runs_echo(gateway: Gateway, tmp_path: Path) -> None:
    wps = WebProcessingService(
        f"{gateway.url}/wps", version="1.0.0", headers={"Authorization": TOKEN}
    )
    assert {"echo", "ndvi"} <= {p.identifier for p in wps.processes}
    assert wps.identification.type == "WPS"

    echo = wps.describeprocess("echo")
    kinds = {i.identifier: i.dataType for i in echo.dataInputs}
    assert kinds["string_input"] == "string" and kinds["integer_input"] == "integer"
    assert kinds["xml_input"] == "ComplexData"
    assert kinds["bounding_box_input"] == "BoundingBoxData"
    assert echo.statusSupported and echo.storeSupported
    ndvi = wps.describeprocess("ndvi")
    image = next(i for i in ndvi.dataInputs if i.identifier == "image")
    assert image.minOccurs == 1 and image.defaultValue.mimeType.startswith("image/tiff")

    execution = wps.execute(
        "echo",
        inputs=[
            ("string_input", "hello WPS"),
            ("integer_input", "7"),
            ("pause", "3"),
            ("xml_input", ComplexDataInput("<a><b>1</b></a>", mimeType="application/xml")),
            ("bounding_box_input", BoundingBoxDataInput([1, 2, 3, 4], crs="EPSG:4326")),
        ],
        output=[
            ("string_output", False),
            ("xml_output", False),
            ("integer_output", True),
            ("bounding_box_output", False),
        ],
        mode=ASYNC,
    )
    assert execution.status == "ProcessAccepted", execution.errors
    assert execution.statusLocation.startswith(f"{gateway.url}/wps/status/")
    statuses = monitor(execution)
    assert execution.isSucceeded(), [e.text for e in execution.errors]
    started = [pct for status, pct in statuses if status == "ProcessStarted"]
    assert started and max(started) > 0, statuses  # the 3 s pause reports progress
    assert statuses[-1] == ("ProcessSucceeded", 100)

    text_file = tmp_path / "string.txt"
    execution.getOutput(filepath=str(text_file), identifier="string_output")
    assert text_file.read_text() == "hello WPS"
    ref_file = tmp_path / "integer.json"
    outputs = {o.identifier: o for o in execution.processOutputs}
    assert outputs["integer_output"].reference
    if gateway.ogcapi:  # published files are served by the OGC API routes
        execution.getOutput(filepath=str(ref_file), identifier="integer_output")
        assert ref_file.read_text() == "7"
    xml = etree.fromstring(outputs["xml_output"].data[0])  # embedded as XML, not as text
    assert (xml.tag, xml[0].tag, xml[0].text) == ("a", "b", "1")
    assert outputs["bounding_box_output"].dataType == "BoundingBoxData"

    job_id = execution.statusLocation.rsplit("/", 1)[-1]
    job = gateway.services.jobs.get(gateway.principal, job_id)  # the OGC API's view
    assert job.interface == "wps1" and job.state is JobState.SUCCESSFUL
    assert job.results and job.results["string_output"] == "hello WPS"
    assert sacct_field(job.scheduler_job_id or "", "User") == "alice"
    if gateway.ogcapi:
        ogc = httpx.get(f"{gateway.url}/jobs/{job_id}", headers={"Authorization": TOKEN})
        assert ogc.status_code == 200 and ogc.json()["status"] == "successful"
    assert gateway.seen_authorization and set(gateway.seen_authorization) == {TOKEN}


def test_owslib_runs_ndvi_and_downloads_the_geotiff(
    gateway: Gateway, file_server: tuple[str, Path], tmp_path: Path
) -> None:
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    base, root = file_server
    data = np.zeros((4, 32, 48), dtype="uint16")
    data[2], data[3] = 10, 30  # red (band 3), nir (band 4): NDVI 0.5
    profile = {
        "driver": "GTiff",
        "width": 48,
        "height": 32,
        "count": 4,
        "dtype": "uint16",
        "crs": "EPSG:32631",
        "transform": from_origin(500000, 4800000, 10, 10),
    }
    with rasterio.open(root / "scene.tif", "w", **profile) as dst:
        dst.write(data)

    wps = WebProcessingService(
        f"{gateway.url}/wps", version="1.0.0", headers={"Authorization": TOKEN}
    )
    execution = wps.execute(
        "ndvi",
        inputs=[("image", ComplexDataInput(f"{base}/scene.tif", mimeType="image/tiff"))],
        output=[("ndvi", True), ("statistics", False)],
        mode=ASYNC,
    )
    assert execution.status == "ProcessAccepted", [e.text for e in execution.errors]
    monitor(execution)
    assert execution.isSucceeded(), [e.text for e in execution.errors]
    outputs = {o.identifier: o for o in execution.processOutputs}
    assert outputs["ndvi"].reference and outputs["ndvi"].mimeType.startswith("image/tiff")
    assert '"mean": 0.5' in outputs["statistics"].data[0]

    job_id = execution.statusLocation.rsplit("/", 1)[-1]
    job = gateway.services.jobs.get(gateway.principal, job_id)
    assert job.state is JobState.SUCCESSFUL and job.inputs["image"]["href"].endswith("scene.tif")
    if not gateway.ogcapi:
        pytest.skip("published outputs are served by the OGC API routes, absent here")
    out = tmp_path / "ndvi.tif"
    execution.getOutput(filepath=str(out), identifier="ndvi")
    served = httpx.get(outputs["ndvi"].reference, headers={"Authorization": TOKEN})
    assert served.headers["Content-Type"] == "image/tiff; application=geotiff"
    assert served.content == out.read_bytes()
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 32631
        assert np.allclose(ds.read(1), 0.5)


def test_owslib_gets_referenced_outputs_as_their_own_bytes(
    gateway: Gateway, tmp_path: Path
) -> None:
    """WPS 1.0 ``wps:Reference``: OWSLib's getOutput downloads the XML as XML and the
    literal as its text (no JSON quotes); plain HTTP sees their own media types."""
    wps = WebProcessingService(
        f"{gateway.url}/wps", version="1.0.0", headers={"Authorization": TOKEN}
    )
    xml_text = '<doc xmlns="urn:x"><a b="1">text</a></doc>'
    execution = wps.execute(
        "echo",
        inputs=[
            ("string_input", "hello_literal"),
            ("xml_input", ComplexDataInput(xml_text, mimeType="application/xml")),
        ],
        output=[("string_output", True), ("xml_output", True)],
        mode=ASYNC,
    )
    monitor(execution)
    assert execution.isSucceeded(), [e.text for e in execution.errors]
    outputs = {o.identifier: o for o in execution.processOutputs}
    assert outputs["xml_output"].mimeType == "application/xml"
    for name, expected in (("string_output", b"hello_literal"), ("xml_output", None)):
        target = tmp_path / name
        execution.getOutput(filepath=str(target), identifier=name)
        if expected is not None:
            assert target.read_bytes() == expected
    root = etree.parse(str(tmp_path / "xml_output")).getroot()  # a document, not a JSON string
    assert (root.tag, root[0].get("b")) == ("{urn:x}doc", "1")
    literal = httpx.get(outputs["string_output"].reference, headers={"Authorization": TOKEN})
    assert literal.headers["Content-Type"] == "text/plain; charset=utf-8"
    xml = httpx.get(outputs["xml_output"].reference, headers={"Authorization": TOKEN})
    assert xml.headers["Content-Type"].startswith("application/xml")


WPS2_NS = {"wps": "http://www.opengis.net/wps/2.0", "xlink": "http://www.w3.org/1999/xlink"}


def _execute_2(mode: str, inputs: str, outputs: str) -> bytes:
    return (
        '<wps:Execute xmlns:wps="http://www.opengis.net/wps/2.0" '
        'xmlns:ows="http://www.opengis.net/ows/2.0" service="WPS" version="2.0.0" '
        f'response="document" mode="{mode}"><ows:Identifier>echo</ows:Identifier>'
        f"{inputs}{outputs}</wps:Execute>"
    ).encode()


def test_wps2_reference_href_serves_the_literal_as_text(gateway: Gateway) -> None:
    """WPS 2.0 ``Output/Reference/@xlink:href``: the output's own bytes and media type."""
    body = _execute_2(
        "sync",
        '<wps:Input id="string_input"><wps:Data>hello_literal</wps:Data></wps:Input>',
        '<wps:Output id="string_output" transmission="reference"/>',
    )
    headers = {"Authorization": TOKEN, "Content-Type": "text/xml"}
    result = httpx.post(f"{gateway.url}/wps", content=body, headers=headers, timeout=120)
    root = assert_valid(result.content)
    href = root.xpath("//wps:Output/wps:Reference/@xlink:href", namespaces=WPS2_NS)[0]
    served = httpx.get(href, headers={"Authorization": TOKEN})
    assert served.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert served.content == b"hello_literal"


def test_wps2_dismissed_job_is_no_such_job(gateway: Gateway) -> None:
    """WPS 2.0 Dismiss, then GetStatus / GetResult: ``NoSuchJob`` (schema-valid OWS 2.0
    reports); the OGC API's status of the same job still says ``dismissed``."""
    headers = {"Authorization": TOKEN, "Content-Type": "text/xml"}
    body = _execute_2("async", '<wps:Input id="pause"><wps:Data>60</wps:Data></wps:Input>', "")
    accepted = httpx.post(f"{gateway.url}/wps", content=body, headers=headers, timeout=30)
    job_id = assert_valid(accepted.content).xpath("wps:JobID/text()", namespaces=WPS2_NS)[0]
    kvp = f"{gateway.url}/wps?service=WPS&version=2.0.0&jobId={job_id}&request="
    auth = {"Authorization": TOKEN}

    def running() -> bool:
        status = assert_valid(httpx.get(kvp + "GetStatus", headers=auth).content)
        return status.xpath("wps:Status/text()", namespaces=WPS2_NS) == ["Running"]

    eventually(running, 90, "the echo job to run on Slurm")
    dismissed = assert_valid(httpx.get(kvp + "Dismiss", headers=auth).content)
    assert dismissed.xpath("wps:Status/text()", namespaces=WPS2_NS) == ["Dismissed"]
    for operation in ("GetStatus", "GetResult"):
        gone = httpx.get(kvp + operation, headers=auth)
        report = assert_valid(gone.content)
        assert gone.status_code == 404 and etree.QName(report).localname == "ExceptionReport"
        assert report[0].get("exceptionCode") == "NoSuchJob", operation
    if gateway.ogcapi:
        ogc = httpx.get(f"{gateway.url}/jobs/{job_id}", headers=auth)
        assert ogc.status_code == 200 and ogc.json()["status"] == "dismissed"
