"""A job's own code writes progress.json and outputs.json: read as strictly as client input.

A job that writes NaN, a lone surrogate or absurd nesting must not crash the
monitor or store results that no read can serialise (issue 14.3's family).
"""

from __future__ import annotations

import pytest

from gateway.workflow.monitor import parse_progress

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "raw",
    [
        b'{"percent": NaN, "message": "x"}',
        b'{"percent": Infinity}',
        b'{"percent": 1e999}',
        b'{"percent": 50, "message": "\\ud800"}',
        b'{"percent": 50, "message": "\xff"}',
        b"[" * 5000,
    ],
)
def test_unusable_progress_is_ignored_not_a_crash(raw):
    assert parse_progress(raw) is None


def test_progress_is_still_read():
    assert parse_progress(b'{"percent": 250, "message": "half"}') == (100, "half")
