"""Issue 14 through the production server (``hpcgw serve``: gunicorn + the worker).

gunicorn de-chunks request bodies and hands them on without a length; the
gateway must bound them exactly like sized ones (413, never cut and accepted),
and its pages must carry the Content-Security-Policy whatever server runs it.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gateway.security_headers import CONTENT_SECURITY_POLICY

pytestmark = pytest.mark.e2e

LIMIT = 1_048_576  # server.max_body_bytes, the default
QUOTE = "/processes/echo/quotations"


def _body(size: int) -> bytes:
    head, tail = b'{"inputs": {"string_input": "', b'"}}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def _chunks(data: bytes, size: int = 16384) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_a_chunked_body_over_the_limit_is_413(gateway_url: str) -> None:
    with httpx.Client(base_url=gateway_url, timeout=30) as client:
        r = client.post(
            QUOTE,
            content=_chunks(_body(LIMIT + 19 * 1024)),
            headers={"Content-Type": "application/json"},
        )
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == 413


def test_a_chunked_body_within_the_limit_is_read_whole(gateway_url: str) -> None:
    with httpx.Client(base_url=gateway_url, timeout=30) as client:
        r = client.post(
            QUOTE, content=_chunks(_body(LIMIT)), headers={"Content-Type": "application/json"}
        )
    assert r.status_code == 200, r.text[:300]


def test_a_sized_body_over_the_limit_is_413(gateway_url: str) -> None:
    with httpx.Client(base_url=gateway_url, timeout=30) as client:
        r = client.post(
            QUOTE, content=_body(LIMIT + 1), headers={"Content-Type": "application/json"}
        )
    assert r.status_code == 413


@pytest.mark.parametrize("path", ["/?f=html", "/jobs?f=html", "/processes/nope?f=html"])
def test_pages_carry_the_policy(gateway_url: str, path: str) -> None:
    r = httpx.get(f"{gateway_url}{path}", timeout=30)
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
