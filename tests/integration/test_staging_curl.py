"""The curl download path against real loopback servers: the same guarantees as httpx.

SSRF guard (forbidden addresses, redirects into them, pinning to the checked
address), size limits (announced and not), checksums, validators, retries with
resume, the hand-over of large answers in ``auto`` mode, and the fall-backs to
httpx (encoded answers, no curl). Needs the ``curl`` binary; no Slurm.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import ipaddress
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gateway.egress import EgressPolicy
from gateway.egress.policy import system_resolver
from gateway.settings_workflow import WorkflowSettings
from gateway.staging import StagingError, build_curl, build_stager
from gateway.staging.base import HashingSink, Validators
from gateway.staging.curl import CurlFetcher, find_curl
from gateway.staging.http import HttpFetcher
from tests.workflow_fixtures import FileServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(find_curl() is None, reason="no usable curl binary"),
]

NAMES = {
    "internal.test": "10.0.0.5",
    "metadata.test": "169.254.169.254",
    "eo.test": "127.0.0.1",  # known to the policy's resolver only, not to the system's DNS
}


def resolver(host: str, port: int) -> list[Any]:
    """System DNS, plus test names (no /etc/hosts edits)."""
    name = host.rstrip(".")
    if name in NAMES:
        return [ipaddress.ip_address(NAMES[name])]
    return system_resolver(host, port)


def policy() -> EgressPolicy:
    return EgressPolicy(allow_cidrs=["127.0.0.1/32"], resolver=resolver)


def settings(**staging: Any) -> WorkflowSettings:
    base: dict[str, Any] = {
        "retries": 3,
        "retry_backoff_seconds": 0.05,
        "read_timeout_seconds": 10,
        "http_backend": "curl",
    }
    return WorkflowSettings(staging={**base, **staging}, egress={"max_redirects": 2})


def curl_fetcher(**staging: Any) -> CurlFetcher:
    fetcher = build_curl(settings(**staging), policy())
    assert fetcher is not None
    return fetcher


def write(path: Path, size: int, seed: int = 1) -> str:
    data = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    path.write_bytes(data[:size])
    return hashlib.sha256(data[:size]).hexdigest()


def fetch(
    fetcher: CurlFetcher | HttpFetcher,
    url: str,
    tmp_path: Path,
    max_bytes: int = 1 << 30,
    known: Validators | None = None,
) -> tuple[Any, bytes]:
    """Fetch ``url`` into a file through a real sink; (result, bytes in the file)."""
    target = tmp_path / "download"
    with open(target, "w+b") as out:
        sink = HashingSink(out, url, max_bytes, time.monotonic() + 120)
        result = fetcher.fetch(url, sink, known)
        out.flush()
    return result, target.read_bytes()


# -- content, checksum, validators --------------------------------------------------------


def test_curl_download_has_the_checksum_size_and_validators(
    tmp_path: Path, file_server: FileServer
) -> None:
    digest = write(file_server.root / "scene.tif", 3 * 2**20 + 17)
    result, data = fetch(curl_fetcher(), file_server.href("scene.tif"), tmp_path)
    assert result.sha256 == digest == hashlib.sha256(data).hexdigest()
    assert result.size == len(data) == 3 * 2**20 + 17
    assert result.media_type == "image/tiff"
    assert result.validators.etag and result.validators.last_modified
    (path, headers) = file_server.state.log[-1]
    assert path == "/files/scene.tif"
    assert headers["User-Agent"] == "ogc-hpc-gateway"
    assert headers["Accept-Encoding"] == "identity"


def test_curl_revalidation_answers_not_modified(tmp_path: Path, file_server: FileServer) -> None:
    write(file_server.root / "a.tif", 1000)
    fetcher = curl_fetcher()
    first, _ = fetch(fetcher, file_server.href("a.tif"), tmp_path)
    again, _ = fetch(fetcher, file_server.href("a.tif"), tmp_path, known=first.validators)
    assert again.not_modified
    assert file_server.state.log[-1][1]["If-None-Match"] == first.validators.etag


def test_stager_with_curl_backend_stages_with_checksum(
    tmp_path: Path, file_server: FileServer
) -> None:
    from hpc_adapters.base import HpcIdentity
    from hpc_adapters.localfs import LocalWorkspace

    digest = write(file_server.root / "scene.tif", 2 * 2**20 + 3)
    data = settings().model_dump()
    data["cache"] = {"root": str(tmp_path / "cache"), "max_bytes": 64 * 2**20}
    stager = build_stager(WorkflowSettings(**data), policy())
    assert isinstance(stager.http.large, CurlFetcher) and stager.http.large_min_bytes == 0
    work = tmp_path / "work"
    work.mkdir()
    files = LocalWorkspace(str(work), HpcIdentity("alice"))
    staged = stager.stage({"image": {"href": file_server.href("scene.tif")}}, files, f"{work}/j")
    assert staged["image"]["sha256"] == digest
    assert hashlib.sha256((work / "j/inputs/image.tif").read_bytes()).hexdigest() == digest


# -- SSRF guard ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://internal.test/x",
        "http://metadata.test/latest",
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.2/x",
        "http://[::1]/x",
        "ftp://example.org/x",
    ],
)
def test_curl_refuses_forbidden_destinations(tmp_path: Path, url: str) -> None:
    with pytest.raises(StagingError) as err:
        fetch(curl_fetcher(), url, tmp_path)
    assert not err.value.transient
    assert "not allowed" in err.value.detail


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://127.0.0.2/x",
        "http://internal.test/x",
        "file:///etc/passwd",
    ],
)
def test_curl_refuses_redirects_into_internal_addresses(
    tmp_path: Path, file_server: FileServer, target: str
) -> None:
    with pytest.raises(StagingError) as err:
        fetch(curl_fetcher(), f"{file_server.url}/redirect?to={target}", tmp_path)
    assert not err.value.transient and "not allowed" in err.value.detail


def test_curl_follows_allowed_redirects_within_the_limit(
    tmp_path: Path, file_server: FileServer
) -> None:
    digest = write(file_server.root / "r.tif", 5000)
    one_hop = f"{file_server.url}/redirect?to={file_server.href('r.tif')}"
    result, data = fetch(curl_fetcher(), one_hop, tmp_path)
    assert result.sha256 == digest == hashlib.sha256(data).hexdigest()
    chain = file_server.href("r.tif")
    for _ in range(3):
        chain = f"{file_server.url}/redirect?to={chain}"
    with pytest.raises(StagingError, match="too many redirects"):
        fetch(curl_fetcher(), chain, tmp_path)  # max_redirects is 2


@pytest.mark.parametrize("host", ["eo.test", "EO.test", "eo.test."])
def test_curl_connects_to_the_address_the_policy_checked(
    tmp_path: Path, file_server: FileServer, host: str
) -> None:
    """``eo.test`` resolves only through the policy's resolver: curl must use that answer."""
    digest = write(file_server.root / "p.tif", 4000)
    port = file_server.url.rsplit(":", 1)[1]
    result, _ = fetch(curl_fetcher(), f"http://{host}:{port}/files/p.tif", tmp_path)
    assert result.sha256 == digest
    assert file_server.state.log[-1][1]["Host"].lower().rstrip(".").startswith("eo.test")


# -- limits ---------------------------------------------------------------------------------


def test_curl_refuses_an_announced_size_over_the_limit(
    tmp_path: Path, file_server: FileServer
) -> None:
    write(file_server.root / "huge.tif", 2 * 2**20)
    with pytest.raises(StagingError, match="limit") as err:
        fetch(curl_fetcher(), file_server.href("huge.tif"), tmp_path, max_bytes=2**20)
    assert not err.value.transient


class _Odd(BaseHTTPRequestHandler):
    """/stream/<n>: n bytes, no Content-Length (ends at close); /gzip: gzip-encoded body."""

    protocol_version = "HTTP/1.0"
    payload = b"0123456789abcdef" * 4096

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/stream/"):
            size = int(self.path.rsplit("/", 1)[1])
            self.send_response(200)
            self.end_headers()
            sent = 0
            while sent < size:
                chunk = self.payload[: min(len(self.payload), size - sent)]
                try:
                    self.wfile.write(chunk)
                except OSError:
                    return
                sent += len(chunk)
            return
        body = gzip.compress(self.payload)
        self.send_response(200)
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def odd_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Odd)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_curl_stops_an_unannounced_body_at_the_limit(tmp_path: Path, odd_server: str) -> None:
    with pytest.raises(StagingError, match="limit") as err:
        fetch(curl_fetcher(), f"{odd_server}/stream/{8 * 2**20}", tmp_path, max_bytes=2**20)
    assert not err.value.transient
    small, data = fetch(curl_fetcher(), f"{odd_server}/stream/100000", tmp_path)
    assert small.size == len(data) == 100000
    assert small.sha256 == hashlib.sha256(data).hexdigest()


def test_encoded_answers_are_fetched_by_httpx_with_the_same_checksum(
    tmp_path: Path, odd_server: str
) -> None:
    """curl would keep the gzip bytes; httpx decodes them: the checksum must not depend on it."""
    stager = build_stager(settings(), policy())
    result, data = fetch(stager.http, f"{odd_server}/gzip", tmp_path)
    assert data == _Odd.payload
    assert result.sha256 == hashlib.sha256(_Odd.payload).hexdigest()


# -- retries --------------------------------------------------------------------------------


def test_curl_resumes_an_interrupted_download_with_range(
    tmp_path: Path, file_server: FileServer
) -> None:
    digest = write(file_server.root / "big.tif", 4 * 2**20 + 5)
    file_server.state.flaky_left["big.tif"] = 1
    result, data = fetch(curl_fetcher(), file_server.href("big.tif", "flaky"), tmp_path)
    assert result.sha256 == digest == hashlib.sha256(data).hexdigest()
    log = [h for p, h in file_server.state.log if p == "/flaky/big.tif"]
    assert len(log) == 2 and log[1]["Range"].startswith("bytes=") and "If-Range" in log[1]
    assert int(log[1]["Range"][6:].rstrip("-")) > 0


def test_curl_retries_server_errors_and_gives_up_transiently(
    tmp_path: Path, file_server: FileServer
) -> None:
    digest = write(file_server.root / "e.tif", 1000)
    file_server.state.errors_left["e.tif"] = 2
    result, _ = fetch(curl_fetcher(), file_server.href("e.tif", "error"), tmp_path)
    assert result.sha256 == digest and file_server.state.requests["/error/e.tif"] == 3
    file_server.state.errors_left["e.tif"] = 100
    with pytest.raises(StagingError) as err:
        fetch(curl_fetcher(), file_server.href("e.tif", "error"), tmp_path)
    assert err.value.transient and "503" in err.value.detail
    with pytest.raises(StagingError) as missing:
        fetch(curl_fetcher(), file_server.href("nope.tif"), tmp_path)
    assert not missing.value.transient and "404" in missing.value.detail


# -- backend choice -------------------------------------------------------------------------


def test_auto_hands_large_answers_to_curl_and_keeps_small_ones(
    tmp_path: Path, file_server: FileServer
) -> None:
    big = write(file_server.root / "big.tif", 2 * 2**20, seed=3)
    small = write(file_server.root / "small.tif", 1000, seed=4)
    stager = build_stager(settings(http_backend="auto", curl_min_bytes=2**20), policy())
    assert stager.http.large is not None and stager.http.large_min_bytes == 2**20
    via = f"{file_server.url}/redirect?to={file_server.href('big.tif')}"
    result, _ = fetch(stager.http, via, tmp_path)
    assert result.sha256 == big
    # httpx followed the redirect and read the headers only; curl fetched the final URL
    assert file_server.state.requests["/files/big.tif"] == 2
    assert file_server.state.requests["/redirect"] == 1
    result, _ = fetch(stager.http, file_server.href("small.tif"), tmp_path)
    assert result.sha256 == small and file_server.state.requests["/files/small.tif"] == 1


def test_without_curl_every_backend_uses_httpx(tmp_path: Path, file_server: FileServer) -> None:
    digest = write(file_server.root / "a.tif", 3000)
    for backend in ("auto", "curl"):
        stager = build_stager(
            settings(http_backend=backend, curl_binary=str(tmp_path / "no-curl")), policy()
        )
        assert stager.http.large is None
        assert fetch(stager.http, file_server.href("a.tif"), tmp_path)[0].sha256 == digest
    assert build_stager(settings(http_backend="httpx"), policy()).http.large is None


def test_stac_items_read_into_memory_stay_on_httpx(file_server: FileServer) -> None:
    write(file_server.root / "item.json", 100)
    fetcher = build_stager(settings(), policy()).http
    sink = HashingSink(io.BytesIO(), "item", 4096, time.monotonic() + 30)
    assert sink.fd is None
    assert fetcher.fetch(file_server.href("item.json"), sink).size == 100
