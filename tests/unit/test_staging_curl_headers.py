"""Reading curl's ``--dump-header`` file (a pure parsing unit; the fetcher itself is
tested against real servers in tests/integration/test_staging_curl.py)."""

from __future__ import annotations

import pytest

from gateway.staging.curl import _parse_headers, _read_errors

pytestmark = pytest.mark.unit


def test_the_final_complete_block_wins_over_informational_ones() -> None:
    raw = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
        b'HTTP/2 206 \r\nContent-Range: bytes 10-19/20\r\nETag: "x"\r\n'
        b"content-length: 10\r\n\r\n"
    )
    answer = _parse_headers(raw)
    assert answer is not None and answer.status == 206
    assert answer.headers["content-range"] == "bytes 10-19/20"
    assert answer.headers["etag"] == '"x"' and answer.length() == 10


def test_a_block_still_being_written_is_not_an_answer() -> None:
    assert _parse_headers(b"") is None
    assert _parse_headers(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n") is None
    assert _parse_headers(b"HTTP/1.1 100 Continue\r\n\r\n") is None
    answer = _parse_headers(b"HTTP/1.0 404 Not Found\nContent-Length: x\n\n")
    assert answer is not None and answer.status == 404 and answer.length() is None


def test_errors_file_gives_the_message_and_the_connected_address(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "stderr"
    path.write_text("curl: (7) Failed to connect\n\n@@hpcgw-remote-ip 192.0.2.7\n")
    assert _read_errors(path) == ("(7) Failed to connect", "192.0.2.7")
    assert _read_errors(tmp_path / "missing") == ("", "")
