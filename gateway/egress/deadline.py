"""An httpx transport whose requests all end by a wall-clock deadline.

httpx timeouts bound each network operation (connect, one read, one write),
not a whole request: a server that sends its headers one byte at a time,
just within the read timeout, could hold a request for hours. For the
submission-time probe (:mod:`gateway.staging.probe`) that would hold the
API request too, so :class:`DeadlineTransport` connects through a network
backend that clips every operation's timeout to the time left before the
deadline -- once it has passed, the next operation fails with a timeout.

Used as the ``inner`` transport of :class:`~gateway.egress.GuardedTransport`
(via ``guarded_client(..., deadline=...)``), so the egress checks still apply.
"""

from __future__ import annotations

import contextlib
import ssl
import time
import typing
from collections.abc import Iterable, Iterator

import httpcore
import httpx

#: httpcore errors -> the httpx errors callers expect (most specific first).
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)
_HTTPCORE_ERRORS = tuple(source for source, _ in _ERRORS)


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    """Re-raise httpcore errors as their httpx counterparts."""
    try:
        yield
    except _HTTPCORE_ERRORS as exc:
        for source, target in _ERRORS:
            if isinstance(exc, source):
                raise target(str(exc) or type(exc).__name__) from exc
        raise


class _Clock:
    """The deadline, and each operation's timeout clipped to it."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def clip(self, timeout: float | None, error: type[Exception]) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise error("the time allowed for this request is spent")
        return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    """A network stream whose reads, writes and TLS handshake end by the deadline."""

    def __init__(self, inner: httpcore.NetworkStream, clock: _Clock) -> None:
        self.inner = inner
        self.clock = clock

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, self.clock.clip(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, self.clock.clip(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        clipped = self.clock.clip(timeout, httpcore.ConnectTimeout)
        return _Stream(self.inner.start_tls(ssl_context, server_hostname, clipped), self.clock)

    def get_extra_info(self, info: str) -> typing.Any:
        return self.inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """httpcore's synchronous socket backend, with every timeout clipped to the deadline."""

    def __init__(self, clock: _Clock) -> None:
        self.clock = clock
        self.inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        clipped = self.clock.clip(timeout, httpcore.ConnectTimeout)
        stream = self.inner.connect_tcp(host, port, clipped, local_address, socket_options)
        return _Stream(stream, self.clock)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        clipped = self.clock.clip(timeout, httpcore.ConnectTimeout)
        return _Stream(self.inner.connect_unix_socket(path, clipped, socket_options), self.clock)

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class _Body(httpx.SyncByteStream):
    """A response body read through httpcore, its errors mapped to httpx ones."""

    def __init__(self, inner: Iterable[bytes]) -> None:
        self.inner = inner

    def __iter__(self) -> Iterator[bytes]:
        with _mapped():
            yield from self.inner

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


class DeadlineTransport(httpx.BaseTransport):
    """Sends requests (no connection reuse) that all end by ``deadline`` (``time.monotonic``)."""

    def __init__(self, deadline: float, verify: ssl.SSLContext | bool = True) -> None:
        self.pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_keepalive_connections=0,
            network_backend=_Backend(_Clock(deadline)),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _mapped():
            resp = self.pool.handle_request(core)
        assert isinstance(resp.stream, Iterable)
        return httpx.Response(
            status_code=resp.status,
            headers=resp.headers,
            stream=_Body(resp.stream),
            extensions=resp.extensions,
        )

    def close(self) -> None:
        self.pool.close()
