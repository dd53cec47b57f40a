"""The OGC API over real HTTP, with a worker and the real dev cluster behind it.

The app runs in a werkzeug server thread on a free port (its base URL is that
port, so Location headers and hrefs are followed as given) and a worker thread
drives the jobs through Slurm.
"""

from __future__ import annotations

import base64
import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from gateway.app import build_services, create_app, start_background_worker
from tests.conftest import make_settings, squeue_ids
from tests.polling import eventually

pytestmark = pytest.mark.slurm

#: Bytes a text round trip would break: NUL, CR/LF, high bytes.
BINARY = b"\x00\x01\r\n\n\xfe\xff"
NOTE = "a note\nfetched by the gateway\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def base_url(cluster: str, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(
        tmp_path, server={"base_url": url, "port": port, "sync_timeout_seconds": 90}
    )
    services = build_services(settings)
    server = make_server("127.0.0.1", port, create_app(settings, services), threaded=True)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    worker, stop = start_background_worker(services)
    yield url
    stop.set()
    worker.join(timeout=10)
    server.shutdown()
    services.close()


@pytest.fixture
def text_server(tmp_path: Path) -> Iterator[str]:
    """A plain HTTP server on loopback with one text file, ``note.txt``."""
    root = tmp_path / "served"
    root.mkdir()
    (root / "note.txt").write_text(NOTE, encoding="utf-8")
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _wait_final(http: httpx.Client, job_url: str, timeout: float = 120) -> dict[str, Any]:
    def final() -> dict | None:
        status = http.get(job_url).json()
        return status if status["status"] in ("successful", "failed", "dismissed") else None

    return eventually(final, timeout, f"{job_url} to finish", every=0.3)


def test_async_echo_then_results_document(base_url: str) -> None:
    with httpx.Client(timeout=30) as http:
        r = http.post(
            f"{base_url}/processes/echo/execution",
            json={"inputs": {"string_input": "over http", "integer_input": 3}},
            headers={"Prefer": "respond-async"},
        )
        assert r.status_code == 201 and r.json()["status"] == "accepted"
        final = _wait_final(http, r.headers["Location"])
        assert final["status"] == "successful", final
        assert final["slurmJobId"]
        results_link = next(lk for lk in final["links"] if lk["rel"].endswith("/results"))
        results = http.get(results_link["href"])
    assert results.json() == {"string_output": "over http", "integer_output": 3}


def test_sync_raw_single_value(base_url: str) -> None:
    r = httpx.post(
        f"{base_url}/processes/echo/execution",
        json={
            "inputs": {"string_input": "sync"},
            "outputs": {"string_output": {}},
            "response": "raw",
        },
        timeout=120,
    )
    assert r.status_code == 200, r.text
    # a literal string output is its own text, without JSON quotes
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8" and r.text == "sync"
    assert "rel=monitor" in r.headers["Link"]


def test_failed_job_results_are_its_exception(base_url: str) -> None:
    with httpx.Client(timeout=30) as http:
        r = http.post(
            f"{base_url}/processes/echo/execution",
            json={"inputs": {"string_input": "doomed", "exit_code": 3}},
            headers={"Prefer": "respond-async"},
        )
        final = _wait_final(http, r.headers["Location"])
        assert final["status"] == "failed"
        results = http.get(f"{r.headers['Location']}/results")
    assert results.status_code == 500
    assert results.headers["Content-Type"] == "application/problem+json"
    assert "exit code 3" in results.json()["detail"]


def test_dismiss_cancels_the_slurm_job(base_url: str) -> None:
    with httpx.Client(timeout=30) as http:
        r = http.post(
            f"{base_url}/processes/echo/execution",
            json={"inputs": {"pause": 120}},
            headers={"Prefer": "respond-async"},
        )
        job_url = r.headers["Location"]

        def running() -> dict | None:
            status = http.get(job_url).json()
            return status if status["status"] == "running" and status.get("slurmJobId") else None

        status = eventually(running, 60, "the job to run on Slurm", every=0.3)
        dismissed = http.delete(job_url)
        assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"
        eventually(
            lambda: status["slurmJobId"] not in squeue_ids(), 15, "the Slurm job to leave squeue"
        )
        assert http.get(f"{job_url}/results").status_code == 404


def related_parts(response: httpx.Response) -> list[Any]:
    """The parts of a ``multipart/related`` answer, read by Python's MIME parser."""
    head = f"Content-Type: {response.headers['Content-Type']}\r\n\r\n".encode()
    message = email.message_from_bytes(head + response.content, policy=email.policy.default)
    assert message.get_content_type() == "multipart/related"
    return list(message.iter_parts())


ECHO_THREE = {
    "string_input": "plain words",
    "xml_input": "<doc>\n  <a>1</a>\n</doc>",
    "binary_input": base64.b64encode(BINARY).decode(),
}


def test_sync_raw_several_outputs_are_multipart_related(base_url: str) -> None:
    r = httpx.post(
        f"{base_url}/processes/echo/execution",
        json={"inputs": ECHO_THREE, "response": "raw"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    parts = related_parts(r)
    # one part per output, in the description's order, each with its own type and id
    assert [(p["Content-ID"], p.get_content_type()) for p in parts] == [
        ("<xml_output>", "application/xml"),
        ("<binary_output>", "application/octet-stream"),
        ("<string_output>", "text/plain"),
    ]
    assert parts[0].get_content() == ECHO_THREE["xml_input"].encode()
    assert parts[1].get_content() == BINARY  # decoded from base64, byte for byte
    assert parts[2].get_content() == "plain words"


def test_async_raw_results_are_multipart_related_too(base_url: str) -> None:
    with httpx.Client(timeout=30) as http:
        r = http.post(
            f"{base_url}/processes/echo/execution",
            json={"inputs": {"string_input": "later", "enum_input": "Value3"}, "response": "raw"},
            headers={"Prefer": "respond-async"},
        )
        final = _wait_final(http, r.headers["Location"])
        assert final["status"] == "successful", final
        results = http.get(f"{r.headers['Location']}/results")
    assert results.status_code == 200
    parts = related_parts(results)
    assert [(p["Content-ID"], p.get_content()) for p in parts] == [
        ("<enum_output>", "Value3"),
        ("<string_output>", "later"),
    ]


def test_outputs_by_reference_serve_their_own_bytes(base_url: str) -> None:
    by_ref = {"transmissionMode": "reference"}
    outputs = {"xml_output": by_ref, "string_output": by_ref, "binary_output": by_ref}
    with httpx.Client(timeout=30) as http:
        r = http.post(
            f"{base_url}/processes/echo/execution",
            json={"inputs": ECHO_THREE, "outputs": outputs, "response": "document"},
            headers={"Prefer": "respond-async"},
        )
        final = _wait_final(http, r.headers["Location"])
        assert final["status"] == "successful", final
        results = http.get(f"{r.headers['Location']}/results").json()
        served = {name: http.get(results[name]["href"]) for name in outputs}
    assert results["xml_output"]["type"] == "application/xml"
    assert served["xml_output"].headers["Content-Type"].startswith("application/xml")
    assert served["xml_output"].content == ECHO_THREE["xml_input"].encode()  # XML, not JSON
    assert served["string_output"].headers["Content-Type"] == "text/plain; charset=utf-8"
    assert served["string_output"].content == b"plain words"  # no JSON quotes
    assert served["binary_output"].headers["Content-Type"] == "application/octet-stream"
    assert served["binary_output"].content == BINARY


def test_echo_input_kinds_round_trip_and_bad_values_are_400(
    base_url: str, text_server: str
) -> None:
    inputs = {
        "array_input": [3, 1, 2],
        "enum_input": "Value1",
        "mixed_input": {"href": f"{text_server}/note.txt"},  # by reference: fetched
    }
    with httpx.Client(timeout=120) as http:
        r = http.post(
            f"{base_url}/processes/echo/execution",
            json={"inputs": inputs, "response": "document"},
        )
        assert r.status_code == 200, r.text
        assert r.json() == {
            "array_output": [3, 1, 2],
            "enum_output": "Value1",
            "mixed_output": NOTE,
        }
        inline = http.post(
            f"{base_url}/processes/echo/execution",
            json={"inputs": {"mixed_input": "inline text"}, "response": "document"},
        )
        assert inline.json() == {"mixed_output": "inline text"}
        for bad, name in (
            ({"enum_input": "Value9"}, "enum_input"),
            ({"array_input": ["a", "b"]}, "array_input"),
            ({"binary_input": "%%%"}, "binary_input"),
        ):
            refused = http.post(f"{base_url}/processes/echo/execution", json={"inputs": bad})
            assert refused.status_code == 400, bad
            assert f"input '{name}'" in refused.json()["detail"]
