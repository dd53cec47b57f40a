"""Input staging against real servers on loopback: HTTP (ranges, validators, flaky links,
redirects), S3 (moto server mode), STAC Items, the content-addressed cache and its bound.
Files land in a real LocalWorkspace; no Slurm needed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import pwd
from pathlib import Path
from typing import Any

import pystac
import pytest

from gateway.egress import EgressPolicy
from gateway.egress.policy import system_resolver
from gateway.settings_workflow import WorkflowSettings
from gateway.staging import Stager, StagingError, build_stager, staged_summary
from hpc_adapters.base import HpcIdentity
from hpc_adapters.localfs import LocalWorkspace
from tests.workflow_fixtures import FileServer, S3Endpoint

pytestmark = pytest.mark.integration

LOGIN = "alice"


def resolver(host: str, port: int) -> list[Any]:
    """System DNS, plus names that resolve to internal addresses (no /etc/hosts edits)."""
    fake = {"internal.test": "10.0.0.5", "metadata.test": "169.254.169.254"}
    if host in fake:
        return [ipaddress.ip_address(fake[host])]
    return system_resolver(host, port)


def make_stager(tmp_path: Path, s3: S3Endpoint | None = None, **sections: Any) -> Stager:
    data: dict[str, Any] = {
        "cache": {"root": str(tmp_path / "cache"), "max_bytes": 64 * 2**20},
        "staging": {"retries": 3, "retry_backoff_seconds": 0.05, "read_timeout_seconds": 5},
    }
    if s3 is not None:
        data["s3"] = {
            "endpoint_url": s3.url,
            "access_key_id_file": str(s3.key_file),
            "secret_access_key_file": str(s3.secret_file),
        }
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    policy = EgressPolicy(allow_cidrs=["127.0.0.1/32"], resolver=resolver)
    return build_stager(WorkflowSettings(**data), policy)


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[LocalWorkspace, str]:
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(LOGIN)
        except KeyError:
            pytest.skip(f"test user {LOGIN} does not exist")
    root = tmp_path / "work"
    root.mkdir(mode=0o755)
    ws = str(root / "job-1")
    files = LocalWorkspace(str(root), HpcIdentity(LOGIN))
    files.mkdir(ws)
    return files, ws


def write(path: Path, size: int, seed: int = 1) -> str:
    data = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    path.write_bytes(data[:size])
    return hashlib.sha256(data[:size]).hexdigest()


def stage(stager: Stager, workspace: tuple[LocalWorkspace, str], image: dict) -> dict:
    files, ws = workspace
    return stager.stage({"image": image, "red_band": 3}, files, ws)["image"]


# -- http(s) ------------------------------------------------------------------------


def test_http_input_is_streamed_into_the_workspace_with_checksum(
    tmp_path: Path, file_server: FileServer, workspace
) -> None:
    digest = write(file_server.root / "scene.tif", 3 * 2**20 + 17)
    staged = stage(make_stager(tmp_path), workspace, {"href": file_server.href("scene.tif")})
    assert staged["path"] == "inputs/image.tif"
    assert staged["sha256"] == digest and staged["size"] == 3 * 2**20 + 17
    placed = Path(workspace[1]) / "inputs" / "image.tif"
    assert hashlib.sha256(placed.read_bytes()).hexdigest() == digest
    if os.geteuid() == 0:  # cache and workspace share tmp_path: the cache object is linked
        mode = placed.stat()
        assert (mode.st_uid, mode.st_mode & 0o7777, mode.st_nlink) == (0, 0o444, 2)
    summary = staged_summary({"image": staged})
    assert summary["image"]["sha256"] == digest


def test_same_input_for_several_jobs_is_fetched_once(
    tmp_path: Path, file_server: FileServer, workspace
) -> None:
    write(file_server.root / "shared.tif", 2**20)
    stager = make_stager(tmp_path)
    href = file_server.href("shared.tif")
    files, ws = workspace
    for job in range(3):
        dest = f"{ws}-{job}"
        files.mkdir(dest)
        stager.stage({"image": {"href": href}}, files, dest)
    assert file_server.state.requests["/files/shared.tif"] == 1


def test_stale_cache_entries_are_revalidated_not_refetched(
    tmp_path: Path, file_server: FileServer, workspace
) -> None:
    digest = write(file_server.root / "a.tif", 2**20)
    stager = make_stager(tmp_path, cache={"fresh_seconds": 0})
    first = stage(stager, workspace, {"href": file_server.href("a.tif")})
    second = stage(stager, workspace, {"href": file_server.href("a.tif")})
    assert first["sha256"] == second["sha256"] == digest
    headers = [h for p, h in file_server.state.log if p == "/files/a.tif"]
    assert len(headers) == 2 and "If-None-Match" in headers[1]


def test_interrupted_download_resumes_with_range(
    tmp_path: Path, file_server: FileServer, workspace
) -> None:
    digest = write(file_server.root / "big.tif", 4 * 2**20 + 5)
    file_server.state.flaky_left["big.tif"] = 1
    staged = stage(make_stager(tmp_path), workspace, {"href": file_server.href("big.tif", "flaky")})
    assert staged["sha256"] == digest
    log = [h for p, h in file_server.state.log if p == "/flaky/big.tif"]
    assert len(log) == 2 and log[1]["Range"].startswith("bytes=") and "If-Range" in log[1]


def test_server_errors_are_retried(tmp_path: Path, file_server: FileServer, workspace) -> None:
    digest = write(file_server.root / "e.tif", 1000)
    file_server.state.errors_left["e.tif"] = 2
    staged = stage(make_stager(tmp_path), workspace, {"href": file_server.href("e.tif", "error")})
    assert staged["sha256"] == digest
    assert file_server.state.requests["/error/e.tif"] == 3


def test_persistent_server_errors_are_transient_failures(
    tmp_path: Path, file_server: FileServer, workspace
) -> None:
    write(file_server.root / "down.tif", 10)
    file_server.state.errors_left["down.tif"] = 100
    with pytest.raises(StagingError) as err:
        stage(make_stager(tmp_path), workspace, {"href": file_server.href("down.tif", "error")})
    assert err.value.transient and "503" in err.value.detail


def test_missing_file_is_a_permanent_failure(
    tmp_path: Path, file_server: FileServer, workspace
) -> None:
    with pytest.raises(StagingError) as err:
        stage(make_stager(tmp_path), workspace, {"href": file_server.href("nope.tif")})
    assert not err.value.transient and "404" in err.value.detail


def test_size_limit(tmp_path: Path, file_server: FileServer, workspace) -> None:
    write(file_server.root / "huge.tif", 2 * 2**20)
    stager = make_stager(tmp_path, staging={"max_input_bytes": 2**20})
    with pytest.raises(StagingError, match="limit") as err:
        stage(stager, workspace, {"href": file_server.href("huge.tif")})
    assert not err.value.transient


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[::1]/x",
        "http://127.0.0.2/x",
        "http://internal.test/x",
        "http://metadata.test/latest",
        "file:///etc/passwd",
    ],
)
def test_redirect_into_internal_addresses_is_refused(
    tmp_path: Path, file_server: FileServer, workspace, target: str
) -> None:
    href = f"{file_server.url}/redirect?to={target}"
    with pytest.raises(StagingError) as err:
        stage(make_stager(tmp_path), workspace, {"href": href})
    assert not err.value.transient
    assert "not allowed" in err.value.detail


def test_allowed_redirects_are_followed_within_the_limit(
    tmp_path: Path, file_server: FileServer, workspace
) -> None:
    digest = write(file_server.root / "r.tif", 100)
    hop = f"{file_server.url}/redirect?to={file_server.href('r.tif')}"
    staged = stage(make_stager(tmp_path), workspace, {"href": hop})
    assert staged["sha256"] == digest
    chain = file_server.href("r.tif")
    for _ in range(3):
        chain = f"{file_server.url}/redirect?to={chain}"
    stager = make_stager(tmp_path, egress={"max_redirects": 2})
    with pytest.raises(StagingError, match="too many redirects"):
        stage(stager, workspace, {"href": chain})


# -- STAC -----------------------------------------------------------------------------


def stac_item(assets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    item = pystac.Item(
        "S2B_T31UDQ_20240601",
        {"type": "Point", "coordinates": [2.35, 48.85]},
        [2.35, 48.85, 2.35, 48.85],
        pystac.utils.str_to_datetime("2024-06-01T10:56:19Z"),
        {},
    )
    doc = item.to_dict(include_self_link=False)
    doc["assets"] = assets
    return doc


def test_stac_asset_by_key_and_by_role(tmp_path: Path, file_server: FileServer, workspace) -> None:
    digest = write(file_server.root / "scene.tif", 5000)
    write(file_server.root / "thumb.png", 100, seed=2)
    doc = stac_item(
        {
            "image": {
                "href": "scene.tif",
                "type": "image/tiff; application=geotiff",
                "roles": ["data"],
            },
            "thumbnail": {"href": "thumb.png", "type": "image/png", "roles": ["thumbnail"]},
        }
    )
    (file_server.root / "item.json").write_text(json.dumps(doc))
    item_href = file_server.href("item.json")
    stager = make_stager(tmp_path)
    by_key = stage(stager, workspace, {"href": item_href, "asset": "image"})
    by_role = stage(stager, workspace, {"href": item_href, "role": "data"})
    by_type = stage(stager, workspace, {"href": item_href, "type": "application/geo+json"})
    for staged in (by_key, by_role, by_type):
        assert staged["sha256"] == digest and staged["path"] == "inputs/image.tif"
        assert staged["stac"]["asset"] == "image"
        assert staged["stac"]["href"] == file_server.href("scene.tif")
        assert staged["stac"]["item_id"] == "S2B_T31UDQ_20240601"
    assert file_server.state.requests["/files/scene.tif"] == 1  # cached by asset URL


def test_stac_selection_errors(tmp_path: Path, file_server: FileServer, workspace) -> None:
    doc = stac_item(
        {
            "B04": {"href": "b04.tif", "roles": ["data"]},
            "B08": {"href": "b08.tif", "roles": ["data"]},
            "passwd": {"href": "file:///etc/passwd", "roles": ["metadata"]},
            "meta": {"href": "http://169.254.169.254/latest", "roles": ["metadata2"]},
        }
    )
    (file_server.root / "item.json").write_text(json.dumps(doc))
    (file_server.root / "not-stac.json").write_text('{"hello": "world"}')
    href = file_server.href("item.json")
    stager = make_stager(tmp_path)
    cases = [
        ({"href": href, "asset": "B11"}, "no asset 'B11' (assets: B04, B08, meta, passwd)"),
        ({"href": href, "role": "data"}, "matches several assets"),
        ({"href": href, "role": "overview"}, "no asset with role 'overview'"),
        ({"href": href, "asset": "passwd"}, "scheme 'file'"),
        ({"href": href, "asset": "meta"}, "not allowed"),
        ({"href": file_server.href("not-stac.json"), "asset": "x"}, "not a STAC Item"),
    ]
    for image, message in cases:
        with pytest.raises(StagingError) as err:
            stage(stager, workspace, image)
        assert message in err.value.detail and not err.value.transient


# -- S3 -------------------------------------------------------------------------------


def test_s3_object_and_stac_item_on_s3(tmp_path: Path, s3_endpoint: S3Endpoint, workspace) -> None:
    s3 = s3_endpoint.client()
    s3.create_bucket(Bucket="eo-data")
    payload = os.urandom(3 * 2**20 + 3)
    s3.put_object(Bucket="eo-data", Key="S2/scene one.tif", Body=payload)
    doc = stac_item({"image": {"href": "scene one.tif", "roles": ["data"]}})
    s3.put_object(Bucket="eo-data", Key="S2/item.json", Body=json.dumps(doc).encode())
    stager = make_stager(tmp_path, s3_endpoint)
    digest = hashlib.sha256(payload).hexdigest()
    staged = stage(stager, workspace, {"href": "s3://eo-data/S2/scene%20one.tif"})
    assert staged["sha256"] == digest and staged["size"] == len(payload)
    via_stac = stage(stager, workspace, {"href": "s3://eo-data/S2/item.json", "asset": "image"})
    assert via_stac["sha256"] == digest
    assert via_stac["stac"]["href"].startswith("s3://eo-data/S2/")
    with pytest.raises(StagingError, match="no such S3 object") as err:
        stage(stager, workspace, {"href": "s3://eo-data/missing.tif"})
    assert not err.value.transient


def test_s3_endpoint_is_checked_by_the_egress_policy(
    tmp_path: Path, s3_endpoint: S3Endpoint, workspace
) -> None:
    stager = make_stager(tmp_path, s3_endpoint)
    assert stager.s3 is not None
    stager.s3.policy = EgressPolicy(resolver=resolver)  # loopback no longer allow-listed
    with pytest.raises(StagingError, match="S3 endpoint is not reachable"):
        stage(stager, workspace, {"href": "s3://eo-data/S2/item.json"})


# -- cache bound ----------------------------------------------------------------------


def test_cache_is_bounded_by_lru_eviction(
    tmp_path: Path, file_server: FileServer, workspace
) -> None:
    stager = make_stager(tmp_path, cache={"max_bytes": int(3.5 * 2**20)})
    assert stager.cache is not None
    for n in range(4):
        write(file_server.root / f"f{n}.tif", 2**20, seed=n)
    for n in (0, 1, 2):
        stage(stager, workspace, {"href": file_server.href(f"f{n}.tif")})
    stage(stager, workspace, {"href": file_server.href("f0.tif")})  # f0 used again: now newest
    stage(stager, workspace, {"href": file_server.href("f3.tif")})
    used, count = stager.cache.usage()
    assert used <= 3.5 * 2**20 and count == 3  # f1, least recently used, was evicted
    stage(stager, workspace, {"href": file_server.href("f0.tif")})
    assert file_server.state.requests["/files/f0.tif"] == 1  # kept (recently used)
    stage(stager, workspace, {"href": file_server.href("f1.tif")})
    assert file_server.state.requests["/files/f1.tif"] == 2  # evicted, fetched again


def test_input_larger_than_the_cache_is_staged_uncached(
    tmp_path: Path, file_server: FileServer, workspace
) -> None:
    digest = write(file_server.root / "xl.tif", 2 * 2**20)
    stager = make_stager(tmp_path, cache={"max_bytes": 2**20})
    assert stage(stager, workspace, {"href": file_server.href("xl.tif")})["sha256"] == digest
    assert stager.cache is not None and stager.cache.usage() == (0, 0)


def test_local_roots(tmp_path: Path, workspace) -> None:
    root = tmp_path / "archive"
    root.mkdir()
    digest = write(root / "scene.tif", 1234)
    stager = make_stager(tmp_path, staging={"local_roots": [str(root)]})
    staged = stage(stager, workspace, {"href": f"file://{root}/scene.tif"})
    assert staged["sha256"] == digest
    with pytest.raises(StagingError, match="outside"):
        stage(stager, workspace, {"href": "file:///etc/passwd"})


# -- TLS with a pinned address ------------------------------------------------------------


def _tls_server(tmp_path: Path, name: str):  # type: ignore[no-untyped-def]
    """An HTTPS server on 127.0.0.1 whose certificate (own CA) names only ``name``."""
    import datetime as dt
    import ssl
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    served = tmp_path / "tls-root"
    served.mkdir()
    (served / "a.tif").write_bytes(b"tls content")
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(served))
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, str(tmp_path / "ca.pem")


def test_https_is_pinned_to_the_checked_address_and_verifies_the_name(tmp_path: Path) -> None:
    """The connection goes to the resolved IP, yet SNI and the certificate check use the name."""
    import httpx

    from gateway.egress import guarded_client

    server, ca = _tls_server(tmp_path, "eo.test")
    port = server.server_address[1]

    def names(host: str, port_: int) -> list[Any]:
        return [ipaddress.ip_address("127.0.0.1")] if host in ("eo.test", "other.test") else []

    policy = EgressPolicy(allow_cidrs=["127.0.0.1/32"], resolver=names)
    try:
        with guarded_client(policy, timeout=5, verify=ca) as client:
            resp = client.get(f"https://eo.test:{port}/a.tif")
            assert resp.status_code == 200 and resp.content == b"tls content"
            with pytest.raises(httpx.ConnectError, match=r"(?i)certificate|hostname"):
                client.get(f"https://other.test:{port}/a.tif")  # same IP, wrong name
    finally:
        server.shutdown()
        server.server_close()
