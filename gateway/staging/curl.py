"""Large http(s) downloads through the ``curl`` binary, with every guarantee of the httpx path.

Python's HTTP stack tops out around 230 MiB/s on the benchmark machine where
curl moves 1.4 GiB/s (``bench/README.md``, section 5), so inputs announced
large enough are handed to :class:`CurlFetcher` (the choice is made by
:class:`~gateway.staging.http.HttpFetcher`). What is kept:

* **SSRF guard.** Each request -- the first and every redirect hop -- is
  checked by :class:`~gateway.egress.EgressPolicy` (scheme, one DNS
  resolution, address policy) and curl is pinned to a checked address with
  ``--resolve host:port:addr`` (Host header, TLS SNI and certificate check
  keep the name). curl follows no redirect itself: a 3xx ``Location`` is
  checked here and requested anew, at most ``max_redirects`` times.
  ``--proto =http,https``, ``--noproxy *``, ``-q`` (no ``.curlrc``) and an
  environment without proxy variables leave curl no other way out. The
  address curl reports having connected to (``%{remote_ip}``) is compared
  with the pinned one; on a mismatch the content is discarded.
* **Limits.** ``--max-filesize`` refuses an announced length over the limit;
  the file is watched as it grows and curl is killed past the limit (unknown
  lengths) or the deadline (``--max-time`` too); ``--speed-time`` plays the
  read timeout.
* **Checksum.** curl's standard output *is* the sink's file: the bytes are
  read back from the page cache with ``pread`` and hashed while the file
  grows (hashing overlaps the transfer), only once the status is known to be
  200/206, so error or redirect bodies are never counted.
* **Retries** as in the httpx path: timeouts, dropped connections,
  408/429/5xx, exponential backoff, resumed with ``Range`` + ``If-Range``
  (strong ETag) when the server accepts ranges; a nearline answer (202, 503
  with ``Retry-After``) raises ``InputNotOnline`` as there.

Arguments are a list (no shell); the URL is canonicalised (IDNA, percent
encoding) by :class:`httpx.URL`, given with ``--url`` after ``--globoff``, so
``-``, ``{}`` or ``[]`` in it mean nothing to curl. Certificates are checked
against the same CA bundle as httpx (certifi). A response with a
``Content-Encoding`` raises :class:`CurlUnsuitable`: httpx decodes such
bodies, so the caller fetches it that way and the checksum never depends on
the backend.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import certifi
import httpx

from gateway.backoff import RETRYABLE_STATUS
from gateway.egress import Destination, EgressPolicy, EgressRefused, UnresolvableHost
from gateway.staging.base import (
    CHUNK,
    FetchResult,
    HashingSink,
    StagingError,
    Validators,
    backoff_or_give_up,
    not_online,
)
from gateway.workflow.errors import TransientStagingError

log = logging.getLogger(__name__)

#: ``--write-out %{stderr}`` appeared in curl 7.63.0 (2018); older curls are not used.
MIN_VERSION = (7, 63, 0)
_MARK = "@@hpcgw-remote-ip"
_STATUS = re.compile(r"^HTTP/[0-9.]+ ([0-9]{3})")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_COULDNT_CONNECT = 7
_HTTP_ERROR = 22
_WRITE_ERROR = 23
_TIMED_OUT = 28
_TOO_LARGE = 63
#: Exit codes of a transfer cut short: retried (and resumed when possible).
_CUT_SHORT = frozenset({8, 16, 18, 52, 55, 56, 92})


class CurlUnsuitable(Exception):
    """This download cannot be done with curl (the caller uses the httpx path)."""


class _Retry(Exception):
    """Internal: this attempt failed in a way worth retrying.

    ``restart``: the sink's content is not a prefix of the answer (start over);
    ``counted``: whether it uses up one of the retries.
    """

    def __init__(self, reason: str, *, restart: bool = False, counted: bool = True) -> None:
        super().__init__(reason)
        self.restart = restart
        self.counted = counted


@dataclass
class _Answer:
    """The status and headers (names lower-cased, last value wins) of one response."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)

    def length(self) -> int | None:
        raw = self.headers.get("content-length", "")
        return int(raw) if raw.isdigit() else None


@dataclass(frozen=True)
class _Exit:
    """How one curl run ended."""

    code: int
    message: str
    remote_ip: str
    answer: _Answer | None


def find_curl(binary: str = "curl") -> str | None:
    """The path of a usable curl (>= 7.63, with http and https), or None."""
    path = shutil.which(binary)
    if path is None:
        return None
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, env=_env(), check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    version = re.match(r"curl (\d+)\.(\d+)\.(\d+)", out.stdout)
    protocols = re.search(r"^Protocols:(.*)$", out.stdout, re.MULTILINE)
    if version is None or protocols is None:
        return None
    if tuple(int(v) for v in version.groups()) < MIN_VERSION:
        log.warning("%s is older than %s: not used", path, ".".join(map(str, MIN_VERSION)))
        return None
    if not {"http", "https"} <= set(protocols.group(1).split()):
        return None
    return path


def _env() -> dict[str, str]:
    """A clean environment: no proxy variables, no CA overrides, C locale."""
    return {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C"}


class CurlFetcher:
    """Fetches http(s) URLs with the ``curl`` binary into a file-backed :class:`HashingSink`."""

    def __init__(
        self,
        policy: EgressPolicy,
        binary: str,
        *,
        connect_timeout_seconds: float = 10.0,
        read_timeout_seconds: float = 60.0,
        max_redirects: int = 5,
        retries: int = 3,
        backoff_seconds: float = 1.0,
        ca_file: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        poll_seconds: float = 0.05,
    ) -> None:
        self.policy = policy
        self.binary = binary
        self.connect_timeout_seconds = connect_timeout_seconds
        self.read_timeout_seconds = read_timeout_seconds
        self.max_redirects = max_redirects
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.ca_file = ca_file or certifi.where()
        self.sleep = sleep
        self.poll_seconds = poll_seconds

    def fetch(self, url: str, sink: HashingSink, known: Validators | None = None) -> FetchResult:
        """Download ``url`` into ``sink``; with ``known`` validators a 304 means unchanged.

        Raises :class:`StagingError` like the httpx path, and :class:`CurlUnsuitable`
        (before anything is kept) when the sink is not a file or the body is encoded.
        """
        fd = sink.fd
        if fd is None:
            raise CurlUnsuitable("the destination is not a file")
        sink.out.flush()
        attempt = 0
        resumable_etag: str | None = None
        while True:
            try:
                return self._attempt(url, sink, fd, known, resumable_etag)
            except _Retry as exc:
                reason = str(exc)
                if exc.restart:
                    sink.restart()
                    sink.resume_etag = None
                if not exc.counted:
                    resumable_etag = None
                    continue
            except UnresolvableHost as exc:
                reason = exc.detail
            except EgressRefused as exc:
                raise StagingError(f"{url}: {exc.detail}") from None
            attempt += 1
            backoff_or_give_up(
                url,
                reason,
                attempt,
                sink,
                retries=self.retries,
                backoff_seconds=self.backoff_seconds,
                sleep=self.sleep,
                log=log.info,
            )
            resumable_etag = sink.resume_etag

    # -- one attempt: the request and its redirects -------------------------------

    def _attempt(
        self,
        url: str,
        sink: HashingSink,
        fd: int,
        known: Validators | None,
        resume_etag: str | None,
    ) -> FetchResult:
        resuming = sink.size > 0 and resume_etag is not None
        if sink.size and not resuming:
            sink.restart()
        headers = {"Accept-Encoding": "identity"}
        if resuming:
            headers["Range"] = f"bytes={sink.size}-"
            headers["If-Range"] = str(resume_etag)
        elif known is not None:
            if known.etag:
                headers["If-None-Match"] = known.etag
            if known.last_modified:
                headers["If-Modified-Since"] = known.last_modified
        headers = {k: v for k, v in headers.items() if not any(c in v for c in "\r\n\0")}
        current = _canonical(url)
        for _hop in range(self.max_redirects + 1):
            answer = self._request(current, sink, fd, headers, resuming)
            location = answer.headers.get("location")
            if answer.status in _REDIRECTS and location:
                current = _canonical(urljoin(current, location))
                continue
            if answer.status == 304 and known is not None and not resuming:
                return FetchResult(validators=known, not_modified=True)
            if answer.status not in (200, 206):
                raise StagingError(f"{url}: unexpected answer {answer.status}")
            validators = Validators(answer.headers.get("etag"), answer.headers.get("last-modified"))
            return FetchResult(
                sink.size, sink.sha256, validators, answer.headers.get("content-type")
            )
        raise StagingError(f"{url}: too many redirects")

    def _request(
        self, url: str, sink: HashingSink, fd: int, headers: dict[str, str], resuming: bool
    ) -> _Answer:
        """One request, pinned to each checked address in turn until one connects."""
        dest = self.policy.check_url(url)
        start = sink.size
        failures: list[str] = []
        for addr in dest.addresses:
            ended = self._run(url, dest, addr, sink, fd, headers, resuming)
            if ended.code == _COULDNT_CONNECT:
                failures.append(ended.message)
                continue
            return self._judge(url, ended, addr, sink, start)
        raise _Retry(f"connection failed ({'; '.join(failures)})")

    # -- one curl run ------------------------------------------------------------------

    def _argv(
        self,
        url: str,
        dest: Destination,
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address,
        headers: dict[str, str],
        header_file: Path,
        sink: HashingSink,
    ) -> list[str]:
        left = sink.deadline - time.monotonic()
        if left <= 0:
            raise TransientStagingError(f"{sink.label}: download took too long")
        argv = [
            self.binary,
            "-q",  # first: no .curlrc
            "--silent",
            "--show-error",
            "--fail",
            "--globoff",
            "--proto",
            "=http,https",
            "--max-redirs",
            "0",
            "--noproxy",
            "*",
            "--connect-timeout",
            f"{self.connect_timeout_seconds:.3f}",
            "--speed-limit",
            "1",
            "--speed-time",
            str(max(1, math.ceil(self.read_timeout_seconds))),
            "--max-time",
            f"{left:.3f}",
            "--max-filesize",
            str(max(1, sink.max_bytes - sink.size)),
            "--cacert",
            self.ca_file,
            "--dump-header",
            str(header_file),
            "--write-out",
            "%{stderr}\n" + _MARK + " %{remote_ip}\n",
            "--user-agent",
            "ogc-hpc-gateway",
        ]
        if _literal(dest.host) is None:
            shown = f"[{addr}]" if addr.version == 6 else str(addr)
            bare = dest.host.rstrip(".")
            for name in (bare, bare + "."):  # curl may match either spelling
                argv += ["--resolve", f"{name}:{dest.port}:{shown}"]
        for name, value in headers.items():
            argv += ["--header", f"{name}: {value}"]
        return [*argv, "--url", url]

    def _run(
        self,
        url: str,
        dest: Destination,
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address,
        sink: HashingSink,
        fd: int,
        headers: dict[str, str],
        resuming: bool,
    ) -> _Exit:
        """Run curl writing at the sink's current size; hash the body as it arrives."""
        start = sink.size
        if os.fstat(fd).st_size != start:  # a redirect's body; not otherwise: on ext4 a
            os.ftruncate(fd, start)  # truncated file is flushed to disk when closed
        os.lseek(fd, start, os.SEEK_SET)
        with tempfile.TemporaryDirectory(prefix="hpcgw-curl-") as tmp:
            header_file, error_file = Path(tmp, "headers"), Path(tmp, "stderr")
            argv = self._argv(url, dest, addr, headers, header_file, sink)
            with open(error_file, "wb") as errors:
                proc = subprocess.Popen(  # arguments as a list: no shell
                    argv, stdin=subprocess.DEVNULL, stdout=fd, stderr=errors, env=_env()
                )
            try:
                answer = self._watch(proc, header_file, sink, fd, resuming)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
            message, remote_ip = _read_errors(error_file)
        return _Exit(proc.returncode, message, remote_ip, answer)

    def _watch(
        self,
        proc: subprocess.Popen[bytes],
        header_file: Path,
        sink: HashingSink,
        fd: int,
        resuming: bool,
    ) -> _Answer | None:
        """Until curl exits: read its headers, accept the body, hash what was written."""
        answer: _Answer | None = None
        accepted = False
        offset = sink.size
        while True:
            exited = proc.poll() is not None  # checked before reading: nothing is missed
            if answer is None:
                answer = _parse_headers(_read_small(header_file))
                if answer is not None and answer.status in (200, 206):
                    _accept(answer, sink, resuming)
                    accepted = True
            before = offset
            if accepted:
                offset = _hash_written(fd, sink, offset)
            if exited:
                return answer
            if time.monotonic() > sink.deadline:
                raise TransientStagingError(f"{sink.label}: download took too long")
            if offset - before < CHUNK:
                try:
                    proc.wait(timeout=self.poll_seconds)
                except subprocess.TimeoutExpired:
                    pass

    def _judge(
        self,
        url: str,
        ended: _Exit,
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address,
        sink: HashingSink,
        start: int,
    ) -> _Answer:
        """The answer of a finished run, or the error it means."""
        if ended.remote_ip and not _same_address(ended.remote_ip, addr):
            raise StagingError(
                f"{url}: curl connected to {ended.remote_ip}, not to the checked address {addr}"
            )
        answer, code = ended.answer, ended.code
        if answer is not None:  # 202, or 503 with Retry-After: on tape, come back later
            nearline = not_online(url, answer.status, answer.headers.get("retry-after"))
            if nearline is not None:
                raise nearline
        if code == 0 and answer is not None:
            expected = answer.length()
            got = sink.size - start
            if answer.status in (200, 206) and expected is not None and got != expected:
                raise _Retry(f"got {got} of {expected} bytes")
            return answer
        if code == _HTTP_ERROR and answer is not None:
            if answer.status in RETRYABLE_STATUS:
                raise _Retry(f"server answered {answer.status}")
            raise StagingError(f"{url}: server answered {answer.status}")
        if code == _TOO_LARGE:
            raise StagingError(f"{url}: larger than the {sink.max_bytes}-byte input limit")
        if code == _TIMED_OUT:
            if time.monotonic() > sink.deadline:
                raise TransientStagingError(f"{url}: download took too long")
            raise _Retry("timed out")
        if code in _CUT_SHORT:
            raise _Retry(f"connection lost after {sink.size} bytes ({ended.message})")
        if code == _WRITE_ERROR:
            raise TransientStagingError(f"{url}: cannot write the download ({ended.message})")
        raise _Retry(f"connection failed ({ended.message or f'curl exit {code}'})")


# -- helpers ---------------------------------------------------------------------------


def _canonical(url: str) -> str:
    """``url`` as curl should see it: IDNA host, percent-encoded, no fragment."""
    try:
        return str(httpx.URL(url).copy_with(fragment=None))
    except (httpx.InvalidURL, ValueError) as exc:
        raise EgressRefused(f"'{url}' is not a valid URL ({exc})") from None


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _same_address(reported: str, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(reported.split("%", 1)[0]) == addr
    except ValueError:
        return False


def _accept(answer: _Answer, sink: HashingSink, resuming: bool) -> None:
    """Decide, from the headers, whether the body being written continues the sink."""
    if answer.headers.get("content-encoding", "identity").lower() not in ("", "identity"):
        raise CurlUnsuitable(f"encoded answer ({answer.headers['content-encoding']})")
    if answer.status == 206 and not (resuming and _range_start(answer) == sink.size):
        raise _Retry("inconsistent partial answer; starting over", restart=True)
    if answer.status == 200 and resuming:
        raise _Retry("the server sent the whole content again", restart=True, counted=False)
    sink.check_announced(answer.length())
    etag = answer.headers.get("etag")
    strong = etag if etag and not etag.startswith("W/") else None
    ranges = answer.headers.get("accept-ranges", "").lower() == "bytes" or answer.status == 206
    sink.resume_etag = strong if ranges else None


def _range_start(answer: _Answer) -> int | None:
    unit, _, rest = answer.headers.get("content-range", "").partition(" ")
    first = rest.split("-", 1)[0]
    return int(first) if unit == "bytes" and first.isdigit() else None


def _hash_written(fd: int, sink: HashingSink, offset: int) -> int:
    """Hash the bytes curl wrote from ``offset`` to the current end of the file."""
    end = os.fstat(fd).st_size
    while offset < end:
        chunk = os.pread(fd, min(CHUNK, end - offset), offset)
        if not chunk:
            break
        sink.record(chunk)
        offset += len(chunk)
    return offset


def _parse_headers(raw: bytes) -> _Answer | None:
    """The last complete, final (not 1xx) header block of curl's ``--dump-header`` file."""
    final: _Answer | None = None
    current: _Answer | None = None
    for line in raw.decode("latin-1").split("\n")[:-1]:  # the last one is not complete
        line = line.rstrip("\r")
        if current is None:
            status = _STATUS.match(line)
            if status:
                current = _Answer(int(status.group(1)))
            continue
        if not line:
            if current.status >= 200:
                final = current
            current = None
            continue
        name, sep, value = line.partition(":")
        if sep:
            current.headers[name.strip().lower()] = value.strip()
    return final


def _read_small(path: Path, limit: int = 1 << 20) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(limit)
    except FileNotFoundError:
        return b""


def _read_errors(path: Path) -> tuple[str, str]:
    """curl's error message and the remote address it reported."""
    message, remote_ip = "", ""
    for line in _read_small(path, 64 * 1024).decode("utf-8", "replace").splitlines():
        if line.startswith(_MARK):
            remote_ip = line[len(_MARK) :].strip()
        elif line.strip():
            message = line.strip().removeprefix("curl: ")
    return message, remote_ip
