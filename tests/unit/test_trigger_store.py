"""The trigger store: owner isolation, feed state, and at most one activation per event,
even when several workers claim the same event at once (SQLite here; PostgreSQL in
``tests/integration/test_triggers_postgres.py``, which runs these same tests)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from gateway import db
from gateway.jobs.records import Owner
from gateway.triggers.records import FeedState, TriggerRule
from gateway.triggers.store import PENDING, SUBMITTED, TriggerNotFound, TriggerStore

pytestmark = pytest.mark.unit

ALICE = Owner(sub="sub-alice", username="alice", hpc_login="alice")
RULE = TriggerRule.model_validate(
    {
        "title": "quakes",
        "process": "echo",
        "inputs": {"string_input": "{{event.id}}"},
        "source": {"type": "fdsn-event", "url": "http://feed.test/query", "intervalSeconds": 60},
    }
)


@pytest.fixture
def triggers(tmp_path) -> Iterator[TriggerStore]:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path}/t.db"
    db.upgrade(url)
    engine = db.make_engine(url)
    yield TriggerStore(engine)
    engine.dispose()


def test_owner_isolation(triggers: TriggerStore) -> None:
    created = triggers.create("t1", ALICE, RULE)
    assert triggers.get("t1", owner_sub="sub-alice").rule == RULE
    with pytest.raises(TriggerNotFound):
        triggers.get("t1", owner_sub="sub-bob")
    with pytest.raises(TriggerNotFound):
        triggers.delete("t1", owner_sub="sub-bob")
    assert [t.id for t in triggers.listing("sub-bob")] == []
    assert [t.id for t in triggers.listing(None)] == [created.id]


def test_due_feeds_follow_each_feeds_schedule(triggers: TriggerStore) -> None:
    triggers.create("t1", ALICE, RULE)
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert [t.id for t in triggers.due_feeds(now)] == ["t1"]
    later = datetime(2026, 12, 7, 12, 5, tzinfo=UTC)
    triggers.save_feed("t1", FeedState(etag='"e1"', next_poll_at=later, last_polled=now))
    assert triggers.due_feeds(now) == []
    assert [t.feed.etag for t in triggers.due_feeds(later)] == ['"e1"']
    disabled = RULE.model_copy(update={"enabled": False})
    triggers.replace("t1", disabled)
    assert triggers.due_feeds(later) == []
    # a manual trigger has no feed: never due
    manual = RULE.model_copy(update={"source": TriggerRule.model_validate(
        {**RULE.wire(), "source": {"type": "manual"}}).source})  # fmt: skip
    triggers.create("t2", ALICE, manual)
    assert triggers.due_feeds(later) == []


def test_an_event_is_claimed_once_whatever_the_concurrency(triggers: TriggerStore) -> None:
    triggers.create("t1", ALICE, RULE)
    won: list[str] = []
    start = threading.Barrier(8)

    def claim(i: int) -> None:
        start.wait()
        activation = triggers.claim_event("t1", "ev-1", "feed", {"id": "ev-1"}, "job-1")
        if activation is not None:
            won.append(f"worker-{i}")

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    [activation] = triggers.activations("t1")
    assert activation.outcome == PENDING
    triggers.settle(activation.id, SUBMITTED)
    assert triggers.activations("t1")[0].outcome == SUBMITTED
    # another trigger may fire on the same event
    triggers.create("t2", ALICE, RULE)
    assert triggers.claim_event("t2", "ev-1", "feed", {"id": "ev-1"}, "job-2") is not None


def test_pending_activations_are_found_for_recovery(triggers: TriggerStore) -> None:
    triggers.create("t1", ALICE, RULE)
    triggers.claim_event("t1", "ev-1", "feed", {"id": "ev-1"}, "job-1")
    assert triggers.pending(datetime(2000, 1, 1, tzinfo=UTC)) == []
    assert [a.event_id for a in triggers.pending(datetime(2100, 1, 1, tzinfo=UTC))] == ["ev-1"]
