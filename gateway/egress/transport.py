"""An httpx transport that connects only where the egress policy allows.

For every request -- including each redirect hop, which httpx sends through
the transport again -- the host is resolved ONCE, every address is checked,
and the connection is made to a checked address: the URL handed to the
connection pool names the IP, the ``Host`` header keeps the name, and for
HTTPS the TLS SNI and certificate check use the name (httpcore's
``sni_hostname`` extension). A DNS answer that changes between the check and
the connection (DNS rebinding) therefore cannot redirect the request.

Use :func:`guarded_client`: it also turns off environment proxies (a proxy
would make the connection on our behalf, unchecked). With ``deadline`` every
request of the client also ends by that time (:mod:`gateway.egress.deadline`).
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

import httpx

from gateway.egress.deadline import DeadlineTransport
from gateway.egress.policy import EgressPolicy, IPAddress

log = logging.getLogger(__name__)


class GuardedTransport(httpx.BaseTransport):
    """Checks each request against ``policy`` and pins it to a checked address."""

    def __init__(self, policy: EgressPolicy, inner: httpx.BaseTransport | None = None) -> None:
        self.policy = policy
        self.inner = inner or httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        dest = self.policy.check_url(str(request.url))
        last: httpx.TransportError | None = None
        for addr in dest.addresses:
            try:
                return self.inner.handle_request(_pinned(request, addr))
            except httpx.ConnectError as exc:
                log.debug("connect to %s (%s) failed: %s", dest.host, addr, exc)
                last = exc
        assert last is not None  # check_url never returns an empty address list
        raise last

    def close(self) -> None:
        self.inner.close()


def _pinned(request: httpx.Request, addr: IPAddress) -> httpx.Request:
    """A copy of ``request`` addressed to ``addr``; Host header and SNI keep the name."""
    url = request.url
    extensions: dict[str, Any] = dict(request.extensions)
    if url.scheme == "https":
        extensions["sni_hostname"] = url.host
    pinned = httpx.Request(
        request.method,
        url.copy_with(host=str(addr)),
        headers=request.headers,
        stream=request.stream,
        extensions=extensions,
    )
    pinned.headers["Host"] = request.headers.get("Host") or url.netloc.decode("ascii")
    return pinned


def guarded_client(
    policy: EgressPolicy,
    *,
    timeout: httpx.Timeout | float,
    max_redirects: int = 5,
    follow_redirects: bool = True,
    verify: bool | str | ssl.SSLContext = True,
    inner: httpx.BaseTransport | None = None,
    deadline: float | None = None,
) -> httpx.Client:
    """An httpx client whose every request (and redirect) goes through the guard.

    ``deadline`` (a ``time.monotonic()`` value) bounds the wall-clock time of all
    its requests, not only each network operation as ``timeout`` does.
    """
    tls: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
    )
    if inner is None and deadline is not None:
        inner = DeadlineTransport(deadline, verify=tls)
    transport = GuardedTransport(
        policy,
        inner or httpx.HTTPTransport(verify=tls, limits=httpx.Limits(max_keepalive_connections=0)),
    )
    return httpx.Client(
        transport=transport,
        timeout=timeout,
        follow_redirects=follow_redirects and max_redirects > 0,
        max_redirects=max_redirects,
        trust_env=False,
        headers={"User-Agent": "ogc-hpc-gateway"},
    )
