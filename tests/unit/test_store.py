"""The SQLAlchemy job store on SQLite: transitions, isolation, pagination, leases."""

import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway import db
from gateway.jobs.records import CreatedRange, DurationRange, JobQuery, JobUpdate, NewJob, Owner
from gateway.jobs.states import JobState
from gateway.jobs.status import iso
from gateway.jobs.store import JobNotFound, JobStore

pytestmark = pytest.mark.unit

ALICE = Owner("sub-alice", "alice", "alice")
BOB = Owner("sub-bob", "bob", "bob")


@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path}/jobs.db"
    db.upgrade(url)
    return JobStore(db.make_engine(url))


def _new(owner=ALICE, process="echo"):
    return NewJob(
        id=str(uuid.uuid4()),
        process_id=process,
        process_version="1.0.0",
        owner=owner,
        site="dev",
        inputs={"string_input": "hi"},
    )


def test_create_is_committed_and_readable(store):
    job = store.create(_new())
    again = store.get(job.id)
    assert again.state is JobState.ACCEPTED
    assert again.owner == ALICE
    assert again.inputs == {"string_input": "hi"}
    assert again.created.tzinfo is not None


def test_transition_forward_only(store):
    job = store.create(_new())
    assert store.transition(job.id, JobState.RUNNING)
    assert store.get(job.id).started is not None
    assert not store.transition(job.id, JobState.QUEUED)
    assert store.transition(job.id, JobState.SUCCESSFUL)
    assert not store.transition(job.id, JobState.FAILED)
    final = store.get(job.id)
    assert final.state is JobState.SUCCESSFUL and final.finished is not None


def test_other_owner_cannot_read(store):
    job = store.create(_new(ALICE))
    with pytest.raises(JobNotFound):
        store.get(job.id, owner_sub=BOB.sub)
    assert store.get(job.id, owner_sub=ALICE.sub).id == job.id


def test_keyset_pagination_visits_every_job_once(store):
    ids = {store.create(_new()).id for _ in range(25)}
    store.create(_new(BOB))
    seen, cursor = [], None
    while True:
        page = store.page(JobQuery(owner_sub=ALICE.sub, limit=10, cursor=cursor))
        seen += [j.id for j in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == 25 and set(seen) == ids


def test_bad_cursor_is_value_error(store):
    with pytest.raises(ValueError):
        store.page(JobQuery(cursor="not-a-cursor"))


def test_claim_is_exclusive_between_workers(store):
    for _ in range(30):
        store.create(_new())
    results = {}

    def grab(name):
        results[name] = store.claim(name, [JobState.ACCEPTED], 30, 60)

    threads = [threading.Thread(target=grab, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [j.id for jobs in results.values() for j in jobs]
    assert len(claimed) == len(set(claimed)) == 30


def test_expired_lease_is_taken_over(store):
    job = store.create(_new())
    assert [j.id for j in store.claim("w1", [JobState.ACCEPTED], 5, -1)] == [job.id]
    assert [j.id for j in store.claim("w2", [JobState.ACCEPTED], 5, 60)] == [job.id]
    assert store.claim("w3", [JobState.ACCEPTED], 5, 60) == []


def test_only_the_holder_of_an_unexpired_lease_renews_it(store):
    mine, theirs, lapsed = (store.create(_new()) for _ in range(3))
    assert [j.id for j in store.claim("w1", [JobState.ACCEPTED], 1, 60)] == [mine.id]
    assert [j.id for j in store.claim("w2", [JobState.ACCEPTED], 1, 60)] == [theirs.id]
    assert [j.id for j in store.claim("w1", [JobState.ACCEPTED], 1, -1)] == [lapsed.id]
    ids = [mine.id, lapsed.id, theirs.id]
    assert store.renew_leases("w1", ids, 60) == {mine.id}
    # the lapsed one stays claimable by anyone; the renewed one is not
    assert [j.id for j in store.claim("w3", [JobState.ACCEPTED], 5, 60)] == [lapsed.id]
    assert store.renew_leases("w1", [lapsed.id], 60) == set()
    assert store.renew_leases("w1", [], 60) == set()


def test_named_lease_has_one_holder(store):
    assert store.acquire_lease("monitor:dev", "w1", 60)
    assert not store.acquire_lease("monitor:dev", "w2", 60)
    assert store.acquire_lease("monitor:dev", "w1", 60)


# -- job list: summaries and the OGC time filters ------------------------------------


def _listed(store, **filters):
    """Ids of every job the summaries list shows with ``filters``, walking all pages of 2."""
    seen, cursor = [], None
    while True:
        page = store.summaries(JobQuery(limit=2, cursor=cursor, **filters))
        seen += [j.id for j in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            return seen


def test_summaries_carry_what_the_full_job_says(store):
    job = store.create(_new())
    store.update(job.id, JobUpdate(scheduler_job_id="77", progress=40, message="halfway"))
    assert store.transition(job.id, JobState.RUNNING)
    other = store.create(_new())
    assert store.transition(other.id, JobState.SUCCESSFUL)
    store.update(other.id, JobUpdate(extra={"publication": {"files": {}}, "staged_inputs": {}}))
    summaries = {s.id: s for s in store.summaries(JobQuery(limit=10)).jobs}
    for full in (store.get(job.id), store.get(other.id)):
        s = summaries[full.id]
        assert (s.process_id, s.state, s.response, s.progress, s.message) == (
            full.process_id,
            full.state,
            full.response,
            full.progress,
            full.message,
        )
        assert s.created == full.created
        # formatted by the database exactly as status documents format the full job
        assert (s.created_text, s.updated_text, s.started_text, s.finished_text) == (
            iso(full.created),
            iso(full.updated),
            iso(full.started),
            iso(full.finished),
        )
        assert s.scheduler_job_id == full.scheduler_job_id
        assert s.published == full.published
    assert summaries[other.id].published and not summaries[job.id].published
    store.update(other.id, JobUpdate(extra={"publication": {"files": {}, "expired": "2026-01-01"}}))
    assert not store.summaries(JobQuery(limit=10)).jobs[0].published


def test_summary_times_are_truncated_to_the_millisecond(store):
    job = store.create(_new())
    store.update(
        job.id,
        JobUpdate(
            created=datetime(2026, 1, 2, 3, 4, 5, 999_999, tzinfo=UTC),
            started=datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC),
            finished=datetime(2026, 1, 2, 3, 4, 5, 1_000, tzinfo=timezone(timedelta(hours=2))),
        ),
    )
    [s] = store.summaries(JobQuery(limit=1)).jobs
    assert s.created_text == "2026-01-02T03:04:05.999Z"
    assert s.started_text == "0999-12-31T23:59:59.000Z"
    assert s.finished_text == "2026-01-02T01:04:05.001Z"
    assert s.created == datetime(2026, 1, 2, 3, 4, 5, 999_999, tzinfo=UTC)


def test_created_range_filters_and_pages(store):
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    ids = []
    for minute in range(6):
        job = store.create(_new())
        store.update(job.id, JobUpdate(created=t0 + timedelta(minutes=minute)))
        ids.append(job.id)
    newest_first = ids[::-1]
    window = CreatedRange(t0 + timedelta(minutes=1), t0 + timedelta(minutes=4))
    assert _listed(store, created=window) == newest_first[2:5]  # minutes 3, 2, 1
    assert _listed(store, created=CreatedRange(start=t0 + timedelta(minutes=4))) == ids[:3:-1]
    assert _listed(store, created=CreatedRange(end=t0 + timedelta(minutes=2))) == ids[1::-1]
    assert _listed(store, created=CreatedRange()) == newest_first
    assert store.page(JobQuery(created=window, limit=10)).jobs[0].id == ids[3]


def test_duration_filters_use_run_time(store):
    now = datetime.now(UTC)
    never = store.create(_new())  # never started: no duration
    quick = store.create(_new())  # ran exactly 10 s
    store.update(
        quick.id,
        JobUpdate(started=now - timedelta(hours=1, seconds=10), finished=now - timedelta(hours=1)),
    )
    slow = store.create(_new())  # ran 100 s
    store.update(
        slow.id,
        JobUpdate(started=now - timedelta(hours=1, seconds=100), finished=now - timedelta(hours=1)),
    )
    running = store.create(_new())  # started 50 s ago, still running: 50 s and growing
    store.update(running.id, JobUpdate(started=now - timedelta(seconds=50)))

    def listed(low, high):
        return set(_listed(store, duration=DurationRange(low, high)))

    assert listed(0, None) == {quick.id, slow.id, running.id}
    assert never.id not in listed(None, 10**6)
    assert listed(10, None) == {quick.id, slow.id, running.id}
    assert listed(None, 10) == {quick.id}
    assert listed(11, None) == {slow.id, running.id}
    assert listed(40, 3600) == {slow.id, running.id}
    assert listed(40, 99) == {running.id}
    assert listed(101, None) == set()
    both = _listed(
        store, duration=DurationRange(10, 100), created=CreatedRange(start=now - timedelta(days=1))
    )
    assert set(both) == {quick.id, slow.id, running.id}


def test_published_filter_pages_are_full_unless_last(store):
    """The STAC catalog's filter is in the query: no short page that still has a next."""
    live = {"files": {}}
    expected = []
    for i in range(9):
        job = store.create(_new())
        store.update(
            job.id, JobUpdate(created=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=i))
        )
        if i % 3 == 0:
            store.update(job.id, JobUpdate(extra={"publication": live}))
            expected.append(job.id)
        elif i % 3 == 1:
            store.update(
                job.id, JobUpdate(extra={"publication": {**live, "expired": "2026-02-01"}})
            )
    seen, cursor = [], None
    while True:
        page = store.page(JobQuery(published=True, limit=2, cursor=cursor))
        seen += [j.id for j in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
        assert len(page.jobs) == 2
    assert seen == expected[::-1]
    assert {s.id for s in store.summaries(JobQuery(published=True, limit=10)).jobs} == set(expected)


def test_job_update_sets_only_what_it_names(store):
    job = store.create(_new())
    store.update(job.id, JobUpdate(message="one", progress=10))
    store.update(job.id, JobUpdate(progress=None))  # None sets NULL; message untouched
    current = store.get(job.id)
    assert (current.message, current.progress) == ("one", None)
    assert JobUpdate().values() == {}
    with pytest.raises(TypeError):
        JobUpdate(mesage="typo")  # type: ignore[call-arg]


def test_the_quote_comes_back_as_a_quote(store):
    from tests.unit.accounting_fixtures import quote_of

    quote = quote_of("echo", {"core_hours": 0.5, "project": "gep", "basis": {"method": "x"}})
    job = store.create(replace(_new(), quote=quote))
    assert store.get(job.id).quote == quote
    assert store.get(store.create(_new()).id).quote is None


def test_an_old_quote_without_newer_fields_still_reads():
    from gateway.jobs.records import Quote

    quote = Quote.from_dict({"process_id": "echo", "core_hours": 0.5, "unknown": 1})
    assert (quote.process_id, quote.core_hours, quote.max_cost, quote.currency) == (
        "echo",
        0.5,
        0.0,
        "",
    )


def test_writers_of_different_extra_keys_never_undo_each_other(store):
    """Each writer sets its own key from a copy read earlier; none is lost.

    The whole-column write the workers used to make loses the other writer's key
    (shown first); ``extra_keys`` is applied by the database to the row as it is.
    """
    job = store.create(replace(_new(), forward_token="t0k"))
    store.update(job.id, JobUpdate(extra_keys={"a": 1}))
    assert store.get(job.id).extra == {"forward_token": "t0k", "a": 1}
    stale = store.get(job.id)
    store.update(job.id, JobUpdate(extra_keys={"missing_since": "2026-12-04T20:00:00"}))
    store.update(job.id, JobUpdate(extra={**stale.extra, "publication": {"files": ["x"]}}))
    assert "missing_since" not in store.get(job.id).extra  # the hazard
    store.update(job.id, JobUpdate(extra={**stale.extra}))

    store.update(job.id, JobUpdate(extra_keys={"missing_since": "2026-12-04T20:00:00"}))
    store.update(job.id, JobUpdate(extra_keys={"publication": {"files": ["y"], "n": 2}}))
    assert store.transition(
        job.id, JobState.STAGING, JobUpdate(extra_keys={"forward_token": None, "b": [1, "ü"]})
    )
    assert store.get(job.id).extra == {
        "a": 1,
        "missing_since": "2026-12-04T20:00:00",
        "publication": {"files": ["y"], "n": 2},
        "b": [1, "ü"],
    }
    with pytest.raises(ValueError, match="not extra keys"):
        store.update(job.id, JobUpdate(extra_keys={"a.b": 1}))
    with pytest.raises(ValueError, match="either extra or extra_keys"):
        store.update(job.id, JobUpdate(extra={}, extra_keys={"a": 2}))


def test_concurrent_key_writers_keep_every_key(store):
    job = store.create(_new())

    def writer(key: str) -> None:
        for i in range(25):
            store.update(job.id, JobUpdate(extra_keys={key: i}))

    threads = [threading.Thread(target=writer, args=(f"k{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get(job.id).extra == {f"k{n}": 24 for n in range(4)}
