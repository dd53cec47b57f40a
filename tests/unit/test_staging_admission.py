"""SSRF and reference checks at submission: 400 with a clear message, nothing queued.

Runs the real application (Flask test client, job store, admission hooks) with
the egress policy's resolver swapped for an offline table, so DNS names can
"resolve" to internal addresses without touching DNS. The static checks run
with the network probe off (the table's public addresses must not be
contacted); the probe -- redirects and STAC assets followed at submission -- is
tested at the end against a real HTTP server on loopback (allow-listed
``127.0.0.1/32``, as in the other suites).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from gateway.app import build_services, create_app
from gateway.jobs.records import JobQuery
from gateway.services import Services
from gateway.settings import Settings
from tests.polling import eventually
from tests.unit.test_egress import REFUSED, resolver

pytestmark = pytest.mark.unit


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, object]:
    data_root = tmp_path / "eo-archive"
    data_root.mkdir()
    (data_root / "scene.tif").write_bytes(b"II*\x00")
    (tmp_path / "secret.txt").write_text("secret")
    (data_root / "escape.tif").symlink_to(tmp_path / "secret.txt")
    # no loopback allow-list here: the refusals are what these tests check
    return {
        "workflow": {
            "staging": {"local_roots": [str(data_root)]},
            "egress": {"probe_references": False},
        }
    }


@pytest.fixture(autouse=True)
def _fake_resolver(services: Services) -> None:
    services.egress.resolver = resolver


@pytest.fixture
def client(services: Services):  # type: ignore[no-untyped-def]
    app = create_app(services.settings, services)
    app.testing = True
    return app.test_client()


def execute(client, image: dict, **body: object):  # type: ignore[no-untyped-def]
    return client.post(
        "/processes/ndvi/execution",
        json={"inputs": {"image": image}, **body},
        headers={"Prefer": "respond-async"},
    )


def assert_refused(resp, services: Services, before: int, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert resp.status_code == 400, resp.get_json()
    doc = resp.get_json()
    assert doc["status"] == 400 and doc["type"].startswith("http")
    for word in words:
        assert word in doc["detail"], doc["detail"]
    assert "Traceback" not in resp.get_data(as_text=True)
    assert services.store.count() == before, "a refused request must not queue a job"


@pytest.mark.parametrize(
    "url", [u for u in REFUSED if not u.startswith(("ftp", "gopher", "dict", "ldap", "http:///"))]
)
def test_ssrf_hrefs_are_refused_before_queueing(client, services: Services, url: str) -> None:
    before = services.store.count()
    assert_refused(execute(client, {"href": url}), services, before, "input 'image'")


@pytest.mark.parametrize(
    "url",
    ["gopher://data.example.org/", "ftp://data.example.org/x", "dict://x:11211/", "http:///x"],
)
def test_unsupported_schemes_are_refused(client, services: Services, url: str) -> None:
    before = services.store.count()
    assert_refused(execute(client, {"href": url}), services, before, "scheme")


def test_stac_item_on_internal_address_is_refused(client, services: Services) -> None:
    before = services.store.count()
    resp = execute(client, {"href": "http://metadata.example.org/item.json", "asset": "B04"})
    assert_refused(resp, services, before, "169.254.169.254", "link-local")


@pytest.mark.parametrize("key", ["successUri", "inProgressUri", "failedUri"])
def test_callback_urls_are_checked_too(client, services: Services, key: str) -> None:
    before = services.store.count()
    subscriber = {"successUri": "https://data.example.org/cb", key: "http://169.254.169.254/cb"}
    resp = execute(client, {"href": "https://data.example.org/a.tif"}, subscriber=subscriber)
    assert_refused(resp, services, before, f"subscriber '{key}'", "link-local")


def test_local_paths_only_under_allowed_roots(client, services: Services, tmp_path: Path) -> None:
    before = services.store.count()
    assert_refused(
        execute(client, {"href": f"file://{tmp_path}/secret.txt"}), services, before, "outside"
    )
    assert_refused(
        execute(client, {"href": f"file://{tmp_path}/eo-archive/../secret.txt"}),
        services,
        before,
        "outside",
    )
    assert_refused(
        execute(client, {"href": f"file://{tmp_path}/eo-archive/escape.tif"}),
        services,
        before,
        "outside",
    )
    assert_refused(
        execute(client, {"href": f"file://{tmp_path}/eo-archive/missing.tif"}),
        services,
        before,
        "not an existing regular file",
    )
    ok = execute(client, {"href": f"file://{tmp_path}/eo-archive/scene.tif"})
    assert ok.status_code == 201, ok.get_json()
    assert services.store.count() == before + 1


def test_malformed_stac_and_s3_references(client, services: Services) -> None:
    before = services.store.count()
    both = {"href": "https://data.example.org/item.json", "asset": "a", "role": "data"}
    assert_refused(execute(client, both), services, before, "either 'asset' or 'role'")
    assert_refused(
        execute(client, {"href": "https://data.example.org/i.json", "asset": ""}),
        services,
        before,
        "non-empty",
    )
    assert_refused(execute(client, {"href": "s3://Bad_Bucket/key"}), services, before, "s3://")
    assert_refused(execute(client, {"href": "s3://bucket"}), services, before, "s3://")


def test_public_references_are_accepted(client, services: Services) -> None:
    before = services.store.count()
    for image in (
        {"href": "https://data.example.org/scene.tif"},
        {"href": "https://data.example.org/item.json", "asset": "B04"},
        {"href": "https://data.example.org/item.json", "role": "data"},
        {"href": "s3://eo-bucket/S2/scene.tif"},
    ):
        resp = execute(client, image)
        assert resp.status_code == 201, resp.get_json()
    assert services.store.count() == before + 4
    stored = services.store.page(JobQuery(limit=10)).jobs
    assert {"href": "https://data.example.org/item.json", "asset": "B04"} in [
        j.inputs["image"] for j in stored
    ]


def test_unresolvable_names_are_refused_unless_allowed(
    client, services: Services, tmp_path: Path
) -> None:
    """A name that does not resolve cannot be checked: refused by default (issue 14.6).

    ``require_resolvable: false`` accepts it (a DNS outage then does not reject
    work); the name is checked again when fetched either way.
    """
    resp = execute(client, {"href": "https://nowhere.example.org/a.tif"})
    assert resp.status_code == 400 and "cannot be resolved" in resp.get_json()["detail"]
    before = services.store.count()
    lenient = Settings(
        database={"url": f"sqlite:///{tmp_path}/y.db"},  # type: ignore[arg-type]
        workflow={"egress": {"require_resolvable": False}},  # type: ignore[arg-type]
    )
    svc = build_services(lenient)
    svc.egress.resolver = resolver
    app = create_app(lenient, svc)
    resp = execute(app.test_client(), {"href": "https://nowhere.example.org/a.tif"})
    assert resp.status_code == 201
    assert svc.store.count() == 1 and services.store.count() == before
    svc.close()


# -- the network probe: redirects and STAC assets, against a real loopback server ------


@dataclass
class Loopback:
    """A loopback HTTP server: what it serves (``items``) and what it was asked (``log``)."""

    url: str
    items: dict[str, object] = field(default_factory=dict)
    log: list[tuple[str, str, str | None]] = field(default_factory=list)
    #: Header bytes /drip wrote (of its 150), and whether it has stopped.
    drip_sent: int = 0
    drip_ended: bool = False

    def redirect(self, to: str, via: str = "redirect") -> str:
        return f"{self.url}/{via}?to={quote(to, safe='')}"


#: /drip's header bytes: 30 s of dribbling if nobody hangs up.
DRIP_BYTES = 150


def _handler(state: Loopback) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """/redirect?to=U (302), /nohead?to=U (HEAD 405, GET 302), /files/<name> (200),
        /items/<name> (a JSON document), /drip (headers one byte at a time), else 404."""

        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def do_GET(self) -> None:
            self._answer(head=False)

        def _answer(self, head: bool) -> None:
            parts = urlsplit(self.path)
            state.log.append((self.command, parts.path, self.headers.get("Range")))
            kind, _, name = parts.path.lstrip("/").partition("/")
            body = b""
            if kind == "nohead" and head:
                self._send(405, b"")
            elif kind in ("redirect", "nohead"):
                self.send_response(302)
                self.send_header("Location", parse_qs(parts.query)["to"][0])
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif kind == "drip":
                self._drip()
            elif kind == "files":
                self._send(200, b"II*\x00" * 100, head)
            elif kind == "items" and name in state.items:
                body = json.dumps(state.items[name]).encode()
                self._send(200, body, head)
            else:
                self._send(404, b"", head)

        def _send(self, status: int, body: bytes, head: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _drip(self) -> None:
            """A status line, then one header byte every 0.2 s: never a whole answer."""
            self.close_connection = True
            try:
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                for _ in range(DRIP_BYTES):
                    self.wfile.write(b"X")
                    self.wfile.flush()
                    state.drip_sent += 1
                    time.sleep(0.2)
            except OSError:
                pass  # the client hung up
            finally:
                state.drip_ended = True

    return Handler


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    state = Loopback(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def probing_services(tmp_path: Path, **egress: object) -> Services:
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path}/probe.db"},  # type: ignore[arg-type]
        publication={"root": str(tmp_path / "pub")},  # type: ignore[arg-type]
        workflow={"egress": {"allow_cidrs": ["127.0.0.1/32"], **egress}},  # type: ignore[arg-type]
    )
    svc = build_services(settings)
    svc.egress.resolver = resolver  # names resolve offline; IP literals need no resolver
    return svc


@pytest.fixture
def probing(tmp_path: Path) -> Iterator[tuple[Services, Any]]:
    """Services with the probe on (the default) and loopback allow-listed, and a client."""
    svc = probing_services(tmp_path)
    assert svc.settings.workflow.egress.probe_references
    app = create_app(svc.settings, svc)
    app.testing = True
    yield svc, app.test_client()
    svc.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stac_item(**assets: str) -> dict[str, object]:
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": "S2_PROBE",
        "geometry": None,
        "properties": {"datetime": "2024-06-01T00:00:00Z"},
        "links": [],
        "assets": {key: {"href": href, "roles": ["data"]} for key, href in assets.items()},
    }


@pytest.mark.parametrize(
    ("target", "host"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://10.0.0.1/scene.tif", "10.0.0.1"),
        ("http://[::1]:{port}/scene.tif", "::1"),
        ("http://metadata.example.org/latest", "metadata.example.org"),
    ],
)
def test_redirect_into_a_refused_address_is_400_before_queueing(
    probing: tuple[Services, Any], loopback: Loopback, target: str, host: str
) -> None:
    services, client = probing
    port = loopback.url.rsplit(":", 1)[1]
    href = loopback.redirect(target.format(port=port))
    before = services.store.count()
    resp = execute(client, {"href": href})
    assert_refused(resp, services, before, "input 'image'", "redirects to", host, "not allowed")
    assert loopback.log == [("HEAD", "/redirect", None)]  # the refused hop was never requested


def test_every_hop_is_checked_and_head_falls_back_to_a_ranged_get(
    probing: tuple[Services, Any], loopback: Loopback
) -> None:
    services, client = probing
    chain = loopback.redirect(loopback.redirect("http://169.254.169.254/x"), via="nohead")
    before = services.store.count()
    assert_refused(execute(client, {"href": chain}), services, before, "169.254.169.254")
    assert loopback.log == [
        ("HEAD", "/nohead", None),
        ("GET", "/nohead", "bytes=0-0"),
        ("HEAD", "/redirect", None),
    ]
    ok = execute(client, {"href": loopback.redirect(f"{loopback.url}/files/a.tif", via="nohead")})
    assert ok.status_code == 201, ok.get_json()
    assert services.store.count() == before + 1


def test_stac_asset_on_a_refused_address_is_400(
    probing: tuple[Services, Any], loopback: Loopback
) -> None:
    services, client = probing
    loopback.items["meta.json"] = stac_item(B04="http://169.254.169.254/x.tif")
    loopback.items["local.json"] = stac_item(B04="file:///etc/passwd")
    loopback.items["hop.json"] = stac_item(B04=loopback.redirect("http://10.0.0.1/x.tif"))
    before = services.store.count()
    for name, words in [
        ("meta.json", ("asset 'B04'", "169.254.169.254", "link-local")),
        ("local.json", ("asset 'B04'", "scheme 'file'")),
        ("hop.json", ("redirects to", "10.0.0.1", "private")),
    ]:
        item = {"href": f"{loopback.url}/items/{name}", "asset": "B04"}
        assert_refused(execute(client, item), services, before, "input 'image'", *words)
    # the Item itself reached through a redirect, its asset selected by role
    via = {"href": loopback.redirect(f"{loopback.url}/items/meta.json"), "role": "data"}
    assert_refused(execute(client, via), services, before, "169.254.169.254")


def test_stac_item_with_allowed_asset_is_accepted_after_probing_the_asset(
    probing: tuple[Services, Any], loopback: Loopback
) -> None:
    _, client = probing
    loopback.items["ok.json"] = stac_item(B04="../files/b04.tif")
    resp = execute(client, {"href": f"{loopback.url}/items/ok.json", "asset": "B04"})
    assert resp.status_code == 201, resp.get_json()
    assert ("GET", "/items/ok.json", None) in loopback.log
    assert ("HEAD", "/files/b04.tif", None) in loopback.log


def test_unreachable_allowed_addresses_are_accepted(
    probing: tuple[Services, Any], loopback: Loopback
) -> None:
    """Network failures do not refuse: the fetch-time checks remain the safety net."""
    services, client = probing
    port = closed_port()
    loopback.items["gone.json"] = stac_item(B04=f"http://127.0.0.1:{port}/b04.tif")
    loopback.items["not-stac.json"] = {"hello": "world"}
    before = services.store.count()
    images = [
        {"href": f"http://127.0.0.1:{port}/scene.tif"},
        {"href": f"http://127.0.0.1:{port}/item.json", "asset": "B04"},
        {"href": f"{loopback.url}/items/gone.json", "asset": "B04"},
        {"href": f"{loopback.url}/missing.tif"},
        {"href": f"{loopback.url}/items/missing.json", "asset": "B04"},
        {"href": f"{loopback.url}/items/not-stac.json", "asset": "B04"},
        {"href": f"{loopback.url}/items/gone.json", "asset": "B11"},  # no such asset
    ]
    for image in images:
        resp = execute(client, image)
        assert resp.status_code == 201, (image, resp.get_json())
    assert services.store.count() == before + len(images)


def test_probe_time_is_bounded_by_the_budget(tmp_path: Path, loopback: Loopback) -> None:
    """A server dribbling its headers (each read within the timeout) cannot hold admission."""
    services = probing_services(tmp_path, probe_hop_timeout_seconds=1.0, probe_budget_seconds=1.0)
    client = create_app(services.settings, services).test_client()
    resp = execute(client, {"href": f"{loopback.url}/drip"})
    assert resp.status_code == 201, resp.get_json()
    # the probe hung up long before the server's 30 s of dribbling (no stopwatch needed:
    # an unbounded probe would have read all of it before the job was accepted)
    eventually(lambda: loopback.drip_ended, 30, "the dribbling server to notice the hang-up")
    assert loopback.drip_sent < DRIP_BYTES // 2
    services.close()


def test_too_many_redirects_and_probe_off_are_accepted(tmp_path: Path, loopback: Loopback) -> None:
    services = probing_services(tmp_path, max_redirects=1)
    client = create_app(services.settings, services).test_client()
    chain = loopback.redirect(loopback.redirect(loopback.redirect("http://10.0.0.1/")))
    resp = execute(client, {"href": chain})  # the refused hop is beyond the limit
    assert resp.status_code == 201, resp.get_json()
    services.close()
    (tmp_path / "off").mkdir()
    services = probing_services(tmp_path / "off", probe_references=False)
    client = create_app(services.settings, services).test_client()
    resp = execute(client, {"href": loopback.redirect("http://169.254.169.254/")})
    assert resp.status_code == 201, resp.get_json()
    services.close()
