"""HTTP(S) downloads through the egress guard: streamed, limited, retried, resumed.

Each download uses a fresh guarded client (no connection reuse across
hosts). Transient failures -- timeouts, dropped connections, 408/429/5xx --
are retried with exponential backoff; when the server supports ranges
(``Accept-Ranges: bytes``) the retry resumes where the previous attempt
stopped (``Range`` + ``If-Range`` on the ETag), else it starts over. Policy
refusals (also for a redirect hop) and 4xx answers are permanent. A nearline
answer -- 202 Accepted, or 503 with ``Retry-After`` -- is neither: it raises
:class:`~gateway.workflow.errors.InputNotOnline` at once (no retry in process),
and the job waits in the gateway (see ``docs/workflow.md``, nearline inputs).

With a ``large`` fetcher (:class:`~gateway.staging.curl.CurlFetcher`), a
download into a file whose answer announces at least ``large_min_bytes`` is
handed over to it as soon as the headers are in (redirects already followed
and checked, the body left unread): the cost is one extra request for large
inputs only. ``large_min_bytes=0`` sends every download into a file straight
to it. STAC Items (read into memory) and encoded answers stay here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import httpx

from gateway.backoff import RETRYABLE_STATUS
from gateway.egress import EgressRefused, UnresolvableHost
from gateway.staging.base import (
    CHUNK,
    FetchResult,
    HashingSink,
    StagingError,
    Validators,
    backoff_or_give_up,
    not_online,
)
from gateway.staging.curl import CurlFetcher, CurlUnsuitable

log = logging.getLogger(__name__)


class _Retry(Exception):
    """Internal: this attempt failed in a way worth retrying."""


class _Handover(Exception):
    """Internal: the answer is large; the ``large`` fetcher takes ``url`` (the final hop)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class HttpFetcher:
    """Fetches http(s) URLs into a :class:`HashingSink`."""

    def __init__(
        self,
        client_factory: Callable[[], httpx.Client],
        retries: int = 3,
        backoff_seconds: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        large: CurlFetcher | None = None,
        large_min_bytes: int = 0,
    ) -> None:
        self.client_factory = client_factory
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep
        self.large = large
        self.large_min_bytes = large_min_bytes

    def fetch(self, url: str, sink: HashingSink, known: Validators | None = None) -> FetchResult:
        """Download ``url`` into ``sink``; with ``known`` validators a 304 means unchanged."""
        handover = self.large is not None and sink.fd is not None
        if handover and self.large_min_bytes == 0:
            result = self._fetch_large(url, sink, known)
            if result is not None:
                return result
            handover = False
        attempt = 0
        resumable_etag: str | None = None
        while True:
            try:
                return self._attempt(url, sink, known, resumable_etag, handover)
            except _Handover as large:
                result = self._fetch_large(large.url, sink, None)
                if result is not None:
                    return result
                handover = False
                continue
            except _Retry as exc:
                reason = str(exc)
            except httpx.TimeoutException:
                reason = "timed out"
            except UnresolvableHost as exc:
                reason = exc.detail
            except httpx.TooManyRedirects:
                raise StagingError(f"{url}: too many redirects") from None
            except httpx.TransportError as exc:
                reason = f"connection failed ({exc})"
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

    def _fetch_large(
        self, url: str, sink: HashingSink, known: Validators | None
    ) -> FetchResult | None:
        """The download by the ``large`` fetcher; None when it cannot take this one."""
        assert self.large is not None
        try:
            return self.large.fetch(url, sink, known)
        except CurlUnsuitable as exc:
            log.info("fetch %s: %s; using httpx", url, exc)
            sink.restart()
            sink.resume_etag = None
            return None

    def _attempt(
        self,
        url: str,
        sink: HashingSink,
        known: Validators | None,
        resume_etag: str | None,
        handover: bool = False,
    ) -> FetchResult:
        headers = {"Accept-Encoding": "identity"}
        resuming = sink.size > 0 and resume_etag is not None
        if resuming:
            headers["Range"] = f"bytes={sink.size}-"
            headers["If-Range"] = str(resume_etag)
        elif known is not None:
            if known.etag:
                headers["If-None-Match"] = known.etag
            if known.last_modified:
                headers["If-Modified-Since"] = known.last_modified
        with self.client_factory() as client, client.stream("GET", url, headers=headers) as resp:
            status = resp.status_code
            if status == 304 and known is not None and not resuming:
                return FetchResult(validators=known, not_modified=True)
            nearline = not_online(url, status, resp.headers.get("Retry-After"))
            if nearline is not None:
                raise nearline
            if status in RETRYABLE_STATUS:
                raise _Retry(f"server answered {status}")
            if status >= 400:
                raise StagingError(f"{url}: server answered {status}")
            if status == 206 and not (resuming and _range_start(resp) == sink.size):
                sink.restart()
                sink.resume_etag = None
                raise _Retry("inconsistent partial answer; starting over")
            if status not in (200, 206):
                raise StagingError(f"{url}: unexpected answer {status}")
            if status == 200 and sink.size:
                sink.restart()
            encoded = resp.headers.get("Content-Encoding", "identity").lower() != "identity"
            expected = None if encoded else _length(resp)
            sink.check_announced(expected)
            if handover and status == 200 and expected is not None and not sink.size:
                if expected >= self.large_min_bytes:
                    raise _Handover(str(resp.url))
            etag = resp.headers.get("ETag")
            validators = Validators(etag, resp.headers.get("Last-Modified"))
            strong = etag if etag and not etag.startswith("W/") else None
            ranges = resp.headers.get("Accept-Ranges", "").lower() == "bytes" or status == 206
            sink.resume_etag = strong if ranges and not encoded else None
            start = sink.size
            try:
                for chunk in resp.iter_bytes(CHUNK):
                    sink.write(chunk)
            except httpx.TransportError as exc:
                raise _Retry(f"connection lost after {sink.size} bytes ({exc})") from None
            if expected is not None and sink.size - start != expected:
                raise _Retry(f"got {sink.size - start} of {expected} bytes")
            media = resp.headers.get("Content-Type")
        return FetchResult(sink.size, sink.sha256, validators, media)


def _length(resp: httpx.Response) -> int | None:
    raw = resp.headers.get("Content-Length")
    return int(raw) if raw and raw.isdigit() else None


def _range_start(resp: httpx.Response) -> int | None:
    """The first byte position of a ``Content-Range: bytes a-b/n`` answer."""
    raw = resp.headers.get("Content-Range", "")
    unit, _, rest = raw.partition(" ")
    start = rest.split("-", 1)[0]
    return int(start) if unit == "bytes" and start.isdigit() else None
