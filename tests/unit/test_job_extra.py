"""The typed records of a job's ``extra`` column keep its JSON shape."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.jobs.extra import (
    CallbackRecord,
    callback_records,
    callbacks_key,
    forward_token,
    missing_since,
    missing_since_key,
)

pytestmark = pytest.mark.unit


def test_callback_records_round_trip_the_stored_shape() -> None:
    stored = {
        "callbacks": {
            "success": {"status": "retrying", "attempts": 2, "at": "2026-01-01T00:00:00+00:00",
                        "last_error": "timed out"},
            "inProgress": {"status": "delivered", "attempts": 0, "at": None,
                           "last_error": None, "sent": [40, "halfway"]},
        },
        "other": 1,
    }  # fmt: skip
    records = callback_records(stored)
    assert records["success"].attempts == 2 and records["success"].status == "retrying"
    assert records["success"].last_attempt == datetime(2026, 1, 1, tzinfo=UTC)
    assert records["inProgress"].sent == (40, "halfway")
    assert {**stored, **callbacks_key(records)} == stored
    assert callbacks_key({}) == {}
    assert CallbackRecord.from_dict(None) == CallbackRecord()


def test_missing_since_and_forward_token() -> None:
    when = datetime(2026, 2, 3, 4, 5, tzinfo=UTC)
    assert missing_since({}) is None
    assert missing_since({"a": 1, **missing_since_key(when)}) == when
    extra = {"forward_token": "t0k", "a": 1}
    assert forward_token(extra) == "t0k" and forward_token({}) is None
