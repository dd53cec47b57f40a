"""Behind nginx with TLS under a path prefix: every link a client sees is the public URL.

A real nginx (Debian ``nginx-light``, installed by ``deploy/install-test-tools.sh``)
runs ``deploy/nginx/hpcgw.conf`` -- listen address, certificate and upstream port
substituted, nothing else -- on loopback with a self-signed certificate made
here by ``openssl``, in front of a real gateway (``hpcgw serve --with-worker``,
real Slurm). The gateway trusts 127.0.0.1 as its proxy and its ``base_url`` is
``https://127.0.0.1:<port>/hpc``, as an operator would configure it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from owslib.wps import ASYNC, WebProcessingService

from tests.conftest import REPO
from tests.e2e.conftest import (
    GatewayDirs,
    free_port,
    running_gateway,
    wait_final,
    write_config,
)
from tests.polling import eventually

pytestmark = pytest.mark.e2e

EXAMPLE = REPO / "deploy" / "nginx" / "hpcgw.conf"
PREFIX = "/hpc"


@dataclass(frozen=True)
class Proxied:
    public: str  # https://127.0.0.1:<port>/hpc
    ca: Path  # the self-signed certificate, to verify TLS with
    gateway_log: Path

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def _nginx() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if found is None:
        pytest.fail("nginx is missing: run deploy/install-test-tools.sh (make test does)")
    return found


def _certificate(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "tls.pem", tmp / "tls.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def site_config(example: str, *, tls_port: int, upstream: int, cert: Path, key: Path) -> str:
    """The example with its listen address, certificate and upstream made local."""
    text = re.sub(r"server \{\n    listen 80;.*?\n\}\n\n", "", example, flags=re.S)  # http->https
    text = re.sub(r"\n\s*listen \[::\]:\d+[^;]*;", "", text)
    text = text.replace("listen 443 ", f"listen 127.0.0.1:{tls_port} ")
    text = text.replace("server 127.0.0.1:5000;", f"server 127.0.0.1:{upstream};")
    text = text.replace("/etc/ssl/certs/gep.example.org.pem", str(cert))
    text = text.replace("/etc/ssl/private/gep.example.org.key", str(key))
    assert "listen 80" not in text and str(tls_port) in text and str(upstream) in text
    return text


def _main_config(tmp: Path, site: Path) -> Path:
    user = "user root root;\n" if os.geteuid() == 0 else ""  # workers may read tmp then
    temp = " ".join(
        f"{kind}_temp_path {tmp / kind};" for kind in ("client_body", "proxy", "fastcgi")
    )
    path = tmp / "nginx.conf"
    path.write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {tmp / 'nginx.pid'};\n"
        f"error_log {tmp / 'error.log'} warn;\nevents {{ worker_connections 64; }}\n"
        f"http {{\n  access_log {tmp / 'access.log'};\n  {temp}\n"
        f"  uwsgi_temp_path {tmp / 'uwsgi'}; scgi_temp_path {tmp / 'scgi'};\n"
        f"  include {site};\n}}\n"
    )
    return path


@pytest.fixture(scope="module")
def proxied(cluster: str, gateway_dirs: GatewayDirs) -> Iterator[Proxied]:
    tmp = gateway_dirs.mktemp("nginx")
    cert, key = _certificate(tmp)
    port, tls_port = free_port(), free_port()
    public = f"https://127.0.0.1:{tls_port}{PREFIX}"
    server = {"host": "127.0.0.1", "port": port, "base_url": public, "workers": 2}
    config = write_config(tmp, port, server={**server, "trusted_proxies": ["127.0.0.1"]})
    site = tmp / "site.conf"
    site.write_text(
        site_config(EXAMPLE.read_text(), tls_port=tls_port, upstream=port, cert=cert, key=key)
    )
    main = _main_config(tmp, site)
    nginx = _nginx()
    subprocess.run(
        [nginx, "-t", "-p", str(tmp), "-c", str(main), "-e", str(tmp / "error.log")],
        check=True,
        capture_output=True,
    )
    with running_gateway(tmp, config, port):
        proc = subprocess.Popen(
            [nginx, "-p", str(tmp), "-c", str(main), "-e", str(tmp / "error.log")],
            start_new_session=True,
        )
        try:

            def up() -> bool:
                assert proc.poll() is None, (tmp / "error.log").read_text()
                try:
                    return httpx.get(
                        f"{public}/conformance", verify=ssl.create_default_context(cafile=str(cert))
                    ).is_success
                except httpx.HTTPError:
                    return False

            eventually(up, 30, "nginx to proxy the gateway", every=0.2)
            yield Proxied(public=public, ca=cert, gateway_log=tmp / "gateway.log")
        finally:
            os.killpg(proc.pid, signal.SIGQUIT)  # graceful shutdown
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _hrefs(document: dict) -> list[str]:
    return [link["href"] for link in document.get("links", [])]


def test_links_and_location_through_nginx_use_the_public_url(proxied: Proxied) -> None:
    public = proxied.public
    with httpx.Client(verify=proxied.tls(), timeout=30) as http:
        landing = http.get(f"{public}/")
        assert landing.status_code == 200
        assert _hrefs(landing.json()) and all(h.startswith(public) for h in _hrefs(landing.json()))
        processes = http.get(f"{public}/processes").json()
        assert all(h.startswith(f"{public}/processes") for h in _hrefs(processes))

        resp = http.post(
            f"{public}/processes/echo/execution",
            json={"inputs": {"string_input": "through nginx"}},
            headers={"Prefer": "respond-async"},
        )
        assert resp.status_code == 201, resp.text
        location = resp.headers["Location"]
        assert location.startswith(f"{public}/jobs/")
        final = wait_final(http, location)  # the Location works through the proxy
        assert final["status"] == "successful", final
        assert _hrefs(final) and all(h.startswith(f"{public}/") for h in _hrefs(final))
        results = http.get(f"{location}/results")
        assert results.json() == {"string_output": "through nginx"}

        item = http.get(f"{public}/stac/items/{final['jobID']}.json")
        assert item.status_code == 200, item.text
        hrefs = _hrefs(item.json()) + [a["href"] for a in item.json()["assets"].values()]
        assert hrefs and all(h.startswith(f"{public}/") for h in hrefs), hrefs
        for href in hrefs:  # and each of them answers through nginx
            assert http.get(href).status_code == 200, href
    # the gateway saw the public URL in nginx's forwarded headers (else it warns)
    assert "set server.base_url" not in proxied.gateway_log.read_text()


def test_wps_status_location_through_nginx_with_owslib(
    proxied: Proxied, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(proxied.ca))  # OWSLib verifies TLS with it
    wps = WebProcessingService(f"{proxied.public}/wps", version="1.0.0")
    assert "echo" in {p.identifier for p in wps.processes}
    execution = wps.execute(
        "echo",
        inputs=[("string_input", "wps via nginx")],
        output=[("string_output", False)],
        mode=ASYNC,
    )
    assert execution.status == "ProcessAccepted", [e.text for e in execution.errors]
    assert execution.statusLocation.startswith(f"{proxied.public}/wps/status/")

    def complete() -> bool:
        execution.checkStatus(sleepSecs=0)  # fetches statusLocation through nginx
        return bool(execution.isComplete())

    eventually(complete, 120, lambda: f"the WPS execution to complete ({execution.status})")
    assert execution.isSucceeded(), [e.text for e in execution.errors]
    assert execution.processOutputs[0].data == ["wps via nginx"]
