"""The SQLAlchemy job store on SQLite: transitions, isolation, pagination, leases."""

import threading
import uuid

import pytest

from gateway import db
from gateway.jobs.records import NewJob, Owner
from gateway.jobs.states import JobState
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
        page = store.page(owner_sub=ALICE.sub, limit=10, cursor=cursor)
        seen += [j.id for j in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == 25 and set(seen) == ids


def test_bad_cursor_is_value_error(store):
    with pytest.raises(ValueError):
        store.page(cursor="not-a-cursor")


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


def test_named_lease_has_one_holder(store):
    assert store.acquire_lease("monitor:dev", "w1", 60)
    assert not store.acquire_lease("monitor:dev", "w2", 60)
    assert store.acquire_lease("monitor:dev", "w1", 60)
