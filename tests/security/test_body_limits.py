"""Issue 14.4: a body over the limit is refused with 413, sized or chunked alike.

Chunked bodies are sent for real over HTTP/1.1 to a real local server
(werkzeug's, which de-chunks and sets ``wsgi.input_terminated`` as gunicorn
does); the same through the test client's WSGI environ.
"""

from __future__ import annotations

import http.client
import io
import json
import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

from tests.security.conftest import ASYNC, EXECUTE, MAX_BODY, assert_problem, job_count

pytestmark = pytest.mark.unit

OVER = MAX_BODY + 19 * 1024


def _execute_body(size: int) -> bytes:
    """A valid echo execute request of exactly ``size`` bytes."""
    head, tail = b'{"inputs": {"string_input": "', b'"}}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


@pytest.fixture
def server(app) -> Iterator[tuple[str, int]]:
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", srv.port
    finally:
        srv.shutdown()
        thread.join(5)


def _send_chunked(address: tuple[str, int], path: str, body: bytes, content_type: str):
    conn = http.client.HTTPConnection(*address, timeout=30)
    try:
        chunks = (body[i : i + 8192] for i in range(0, len(body), 8192))
        conn.request(
            "POST",
            path,
            body=chunks,
            headers={"Content-Type": content_type, **ASYNC},
            encode_chunked=True,
        )
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    except (BrokenPipeError, ConnectionResetError):
        pytest.fail("the server closed the connection instead of answering 413")
    finally:
        conn.close()


@pytest.mark.parametrize("path", [EXECUTE, "/processes/echo/quotations"])
def test_chunked_body_over_the_limit_is_413_not_cut(server, services, path):
    status, ctype, data = _send_chunked(server, path, _execute_body(OVER), "application/json")
    assert status == 413, data[:300]
    assert ctype == "application/problem+json"
    assert json.loads(data)["status"] == 413
    assert job_count(services) == 0


def test_chunked_body_within_the_limit_is_read_whole(server, services):
    body = _execute_body(MAX_BODY)
    status, _, data = _send_chunked(server, EXECUTE, body, "application/json")
    assert status == 201, data[:300]
    job = services.store.get(json.loads(data)["jobID"])
    assert len(job.inputs["string_input"]) == MAX_BODY - len(b'{"inputs": {"string_input": ""}}')


def test_chunked_wps_request_over_the_limit_is_an_ows_413(server, services):
    body = b'<?xml version="1.0"?><!--' + b"x" * OVER + b"-->"
    status, ctype, data = _send_chunked(server, "/wps", body, "application/xml")
    assert status == 413
    assert "xml" in ctype and b"ExceptionReport" in data
    assert job_count(services) == 0


def test_chunked_form_over_the_limit_is_413(server):
    body = b"service=WPS&request=GetCapabilities&x=" + b"y" * OVER
    status, _, _ = _send_chunked(server, "/wps", body, "application/x-www-form-urlencoded")
    assert status == 413


def test_sized_body_over_the_limit_is_413(client, services):
    r = client.post(
        EXECUTE, data=_execute_body(OVER), content_type="application/json", headers=ASYNC
    )
    assert_problem(r, 413)
    assert job_count(services) == 0


@pytest.mark.parametrize("size, status", [(OVER, 413), (MAX_BODY + 1, 413), (MAX_BODY, 201)])
def test_unsized_body_through_the_wsgi_environ(client, services, size, status):
    # what gunicorn hands the app for Transfer-Encoding: chunked
    environ = {"wsgi.input": io.BytesIO(_execute_body(size)), "wsgi.input_terminated": True}
    r = client.post(
        EXECUTE, content_type="application/json", headers=ASYNC, environ_overrides=environ
    )
    assert r.status_code == status, r.data[:300]
    assert job_count(services) == (1 if status == 201 else 0)
