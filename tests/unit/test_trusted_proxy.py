"""Forwarded headers are honoured from the configured reverse proxies only (gateway.http.proxy)."""

from __future__ import annotations

import logging

import pytest
from flask import Flask, jsonify, redirect, request
from flask.typing import ResponseReturnValue

from gateway.app import create_app
from gateway.services import Services
from gateway.settings import Settings, load_settings

pytestmark = pytest.mark.unit

PUBLIC = "https://gep.example.org/hpc"
FORWARDED = {
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "gep.example.org",
    "X-Forwarded-Prefix": "/hpc",
}


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"server": {"base_url": PUBLIC, "trusted_proxies": ["10.0.0.5", "192.168.8.0/24"]}}


@pytest.fixture
def app(settings: Settings, services: Services) -> Flask:
    app = create_app(settings, services)

    @app.get("/_probe")
    def probe() -> ResponseReturnValue:  # what the gateway's own code sees of a request
        return jsonify(
            root=request.url_root,
            client=request.remote_addr,
            forwarded_host=request.headers.get("X-Forwarded-Host"),
        )

    @app.get("/_bounce")
    def bounce() -> ResponseReturnValue:  # a redirect Werkzeug makes absolute from the request
        return redirect(request.host_url.rstrip("/") + request.script_root + "/conformance")

    return app


def _get(app: Flask, path: str, peer: str) -> dict[str, str]:
    client = app.test_client()
    resp = client.get(path, headers=FORWARDED, environ_base={"REMOTE_ADDR": peer})
    assert resp.status_code == 200, resp.data
    return dict(resp.get_json())


def test_a_trusted_proxy_sets_the_public_url_client_and_prefix(app: Flask) -> None:
    seen = _get(app, "/_probe", "10.0.0.5")
    assert seen["root"] == f"{PUBLIC}/"
    assert seen["client"] == "203.0.113.7"
    seen = _get(app, "/_probe", "192.168.8.200")  # a CIDR entry
    assert seen["root"] == f"{PUBLIC}/"


def test_forwarded_headers_from_an_untrusted_peer_are_ignored_and_dropped(app: Flask) -> None:
    seen = _get(app, "/_probe", "198.51.100.9")
    assert seen["root"] == "http://localhost/"
    assert seen["client"] == "198.51.100.9"
    assert seen["forwarded_host"] is None  # nothing downstream can read the forged header
    bounce = app.test_client().get(
        "/_bounce", headers=FORWARDED, environ_base={"REMOTE_ADDR": "198.51.100.9"}
    )
    assert "gep.example.org" not in bounce.headers["Location"]


def test_document_links_use_base_url_whatever_an_untrusted_peer_forwards(app: Flask) -> None:
    client = app.test_client()
    headers = {**FORWARDED, "X-Forwarded-Host": "evil.example"}
    resp = client.get("/processes", headers=headers, environ_base={"REMOTE_ADDR": "198.51.100.9"})
    hrefs = [link["href"] for link in resp.get_json()["links"]]
    assert hrefs and all(h.startswith(f"{PUBLIC}/processes") for h in hrefs)


def test_a_proxy_forwarding_another_url_than_base_url_is_logged(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {**FORWARDED, "X-Forwarded-Host": "other.example.org"}
    with caplog.at_level(logging.WARNING, logger="gateway.http.proxy"):
        app.test_client().get(
            "/conformance", headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.5"}
        )
    assert "https://other.example.org/hpc" in caplog.text
    assert "server.base_url" in caplog.text


def test_a_direct_request_from_a_trusted_address_is_no_mismatch(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """A local health check (no forwarded header) says nothing about the proxy."""
    with caplog.at_level(logging.WARNING, logger="gateway.http.proxy"):
        app.test_client().get("/conformance", environ_base={"REMOTE_ADDR": "10.0.0.5"})
    assert "server.base_url" not in caplog.text


def test_a_bad_trusted_proxy_entry_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        load_settings(server={"trusted_proxies": ["not-an-address"]})
