"""The submission-time network probe of http(s) references: where do they really lead?

The static admission check sees only the href. A URL on an allowed host may
redirect into the cloud metadata service, and a STAC Item on an allowed host
may name an asset on an internal address; both are only visible over the
network. For each http(s) reference the probe therefore:

* follows the URL's redirects by hand, at most ``max_redirects``, with a
  ``HEAD`` request per hop -- or ``GET`` with ``Range: bytes=0-0`` when the
  server answers ``HEAD`` with 405/501 -- and no body read; every hop goes
  through the egress guard, so a hop into a refused address raises
  :class:`~gateway.egress.EgressRefused` (a policy violation: 400);
* for a STAC Item, ``GET``\\ s the Item (redirects followed the same way, at
  most ``max_item_bytes`` read) so that the caller can check the selected
  asset's href, then probes that href the same way.

Anything else -- connection refused, timeouts, DNS failures, 4xx/5xx answers,
too many redirects, an Item that is too large or not an Item -- makes the
probe *inconclusive*: it is logged and the job is accepted, the fetch-time
checks remaining the safety net. Every request of one input shares a
wall-clock budget (:class:`~gateway.egress.DeadlineTransport`), besides the
per-request timeout.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pystac

from gateway.egress import EgressPolicy, EgressRefused, UnresolvableHost, guarded_client
from gateway.settings_workflow import WorkflowSettings
from gateway.staging.base import StagingError
from gateway.staging.stac import parse_item

log = logging.getLogger(__name__)

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NO_HEAD = frozenset({405, 501})
#: What makes a probe inconclusive (the reference is accepted).
_INCONCLUSIVE = (httpx.HTTPError, httpx.InvalidURL, UnresolvableHost)


@dataclass(frozen=True)
class ProbeLimits:
    """How far and how long one input is probed."""

    hop_timeout_seconds: float = 3.0
    budget_seconds: float = 5.0
    max_redirects: int = 5
    max_item_bytes: int = 4 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: WorkflowSettings) -> ProbeLimits:
        egress = settings.egress
        return cls(
            hop_timeout_seconds=egress.probe_hop_timeout_seconds,
            budget_seconds=egress.probe_budget_seconds,
            max_redirects=egress.max_redirects,
            max_item_bytes=settings.staging.max_stac_item_bytes,
        )


class ProbeSession:
    """The probe of one input: a guarded client whose requests share one deadline."""

    def __init__(self, client: httpx.Client, limits: ProbeLimits) -> None:
        self.client = client
        self.limits = limits

    def follow(self, url: str) -> None:
        """Follow ``url``'s redirects, each hop checked; EgressRefused on a refused hop."""
        try:
            self._walk(url, body=False)
        except _INCONCLUSIVE as exc:
            log.info("admission probe of %s inconclusive (accepted): %s", url, exc)

    def stac_item(self, href: str) -> pystac.Item | None:
        """The STAC Item at ``href`` (redirects checked), or None when it cannot be read now."""
        try:
            raw = self._walk(href, body=True)
            return parse_item(raw, href) if raw is not None else None
        except (*_INCONCLUSIVE, StagingError) as exc:
            log.info("admission probe of STAC Item %s inconclusive (accepted): %s", href, exc)
            return None

    def first_bytes(self, url: str, count: int) -> bytes | None:
        """At most the first ``count`` bytes of ``url`` (one ranged GET, redirects
        checked), or None when they cannot be read now (a raster's header)."""
        try:
            return self._walk(url, body=True, prefix=count)
        except _INCONCLUSIVE as exc:
            log.info("first bytes of %s unknown: %s", url, exc)
            return None

    def _walk(self, url: str, *, body: bool, prefix: int = 0) -> bytes | None:
        """Request ``url`` and the redirects it leads to; the final body when ``body``
        (only its first ``prefix`` bytes, asked for with a Range, when ``prefix``)."""
        origin = url
        for hop in range(self.limits.max_redirects + 1):
            try:
                resp = self._send(url, body, prefix)
            except EgressRefused as exc:
                if hop == 0:
                    raise
                raise EgressRefused(f"{origin} redirects to {url}: {exc.detail}") from None
            try:
                location = resp.headers.get("Location")
                if resp.status_code in _REDIRECTS and location:
                    url = str(resp.url.join(location))
                    continue
                if prefix and resp.status_code in (200, 206):
                    return _read_prefix(resp, prefix)
                if body and resp.status_code == 200:
                    return _read_limited(resp, self.limits.max_item_bytes)
                log.debug("admission probe of %s: %s answered %d", origin, url, resp.status_code)
                return None
            finally:
                resp.close()
        log.info("admission probe of %s: more than %d redirects", origin, self.limits.max_redirects)
        return None

    def _send(self, url: str, body: bool, prefix: int = 0) -> httpx.Response:
        """One request, its body unread: GET for a body, else HEAD (ranged GET if refused)."""
        headers = {"Accept-Encoding": "identity"}
        if prefix:
            return self._request("GET", url, {**headers, "Range": f"bytes=0-{prefix - 1}"})
        if body:
            return self._request("GET", url, headers)
        resp = self._request("HEAD", url, headers)
        if resp.status_code in _NO_HEAD:
            resp.close()
            resp = self._request("GET", url, {**headers, "Range": "bytes=0-0"})
        return resp

    def _request(self, method: str, url: str, headers: dict[str, str]) -> httpx.Response:
        request = self.client.build_request(method, url, headers=headers)
        return self.client.send(request, stream=True)


def _read_prefix(resp: httpx.Response, count: int) -> bytes:
    """The first ``count`` bytes of the body (a server may ignore the Range)."""
    data = bytearray()
    for chunk in resp.iter_bytes():
        data += chunk
        if len(data) >= count:
            break
    return bytes(data[:count])


def _read_limited(resp: httpx.Response, limit: int) -> bytes | None:
    """The body, or None when it is larger than ``limit`` bytes."""
    announced = resp.headers.get("Content-Length", "")
    if announced.isdigit() and int(announced) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    for chunk in resp.iter_bytes():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class ReferenceProbe:
    """Opens :class:`ProbeSession`\\ s through ``policy`` within ``limits``."""

    def __init__(
        self, policy: EgressPolicy, limits: ProbeLimits, verify: bool | str = True
    ) -> None:
        self.policy = policy
        self.limits = limits
        self.verify = verify

    @contextlib.contextmanager
    def session(self) -> Iterator[ProbeSession]:
        """A session whose requests all end within ``limits.budget_seconds`` from now."""
        deadline = time.monotonic() + self.limits.budget_seconds
        with guarded_client(
            self.policy,
            timeout=self.limits.hop_timeout_seconds,
            follow_redirects=False,
            max_redirects=0,
            verify=self.verify,
            deadline=deadline,
        ) as client:
            yield ProbeSession(client, self.limits)
