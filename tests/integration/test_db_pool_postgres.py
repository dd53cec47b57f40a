"""Pooled PostgreSQL connections that the server (or the network) ended are replaced.

The pool checks a connection at checkout without a round trip
(``gateway.db.make_engine``), and a read that meets a connection which died
silently is read again on a new one (``JobStore._read``). Both against the
real dev server: ``pg_terminate_backend`` ends a session as a server restart
or an idle timeout would, and a relay in front of the server cuts the
connection while a query is in flight, as a dropped network would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from gateway import db
from gateway.jobs.records import JobQuery, NewJob, Owner
from gateway.jobs.states import JobState
from gateway.jobs.status import status_info
from gateway.jobs.store import JobStore
from tests.pg_scratch import PG_URL, scratch_schema_url
from tests.polling import eventually
from tests.tcp_relay import CutRelay

pytestmark = pytest.mark.postgres

ALICE = Owner("sub-alice", "alice", "alice")
BASE = "https://gw.example.org"


@pytest.fixture
def url() -> Iterator[str]:
    with scratch_schema_url() as scratch:
        yield scratch


def _job(store: JobStore, n: int) -> str:
    job = store.create(
        NewJob(
            id=f"00000000-0000-4000-8000-{n:012d}",
            process_id="echo",
            process_version="1.0.0",
            owner=ALICE,
            site="dev",
            inputs={"string_input": f"hi {n}"},
        )
    )
    return job.id


def _listing(store: JobStore) -> list[dict[str, object]]:
    """What GET /jobs shows alice: her job list as status documents."""
    page = store.summaries(JobQuery(limit=10, owner_sub=ALICE.sub))
    return [status_info(job, BASE) for job in page.jobs]


def _backend_pid(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int) -> None:
    admin = sa.create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()

        def gone() -> bool:
            with admin.connect() as conn:
                q = sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p")
                return conn.execute(q, {"p": pid}).scalar_one() == 0

        eventually(gone, 10, f"backend {pid} to end")
    finally:
        admin.dispose()


def test_a_session_the_server_ended_is_replaced_for_reads_and_writes(url: str) -> None:
    engine = db.make_engine(url, pool_size=1)
    store = JobStore(engine)
    try:
        first = _job(store, 1)
        before = _listing(store)
        pid = _backend_pid(engine)  # the one pooled connection
        _terminate(pid)

        assert _listing(store) == before  # the list, as before: no error, same documents
        assert _backend_pid(engine) != pid  # on a new session
        _terminate(_backend_pid(engine))
        # a write has no second attempt: the checkout itself must not hand out the dead one
        assert store.transition(first, JobState.RUNNING)
        second = _job(store, 2)
        assert [d["jobID"] for d in _listing(store)] == [second, first]
        assert store.get(first).state is JobState.RUNNING
    finally:
        engine.dispose()


def test_a_read_whose_connection_is_cut_in_flight_is_read_again(url: str) -> None:
    relay = CutRelay("127.0.0.1", sa.engine.make_url(PG_URL).port or 5432)
    relayed = str(sa.engine.make_url(url).set(port=relay.port).render_as_string(False))
    engine = db.make_engine(relayed, pool_size=1)
    store = JobStore(engine)
    try:
        _job(store, 1)
        before = _listing(store)
        relay.hold()  # the server's answers stay in the relay: the read waits ...
        result: list[list[dict[str, object]]] = []
        reader = threading.Thread(target=lambda: result.append(_listing(store)))
        reader.start()
        eventually(lambda: engine.pool.checkedout() == 1, 10, "the read to be under way")
        relay.cut()  # ... until the connection dies under it
        reader.join(timeout=30)
        assert not reader.is_alive()
        assert result == [before]
        assert relay.cuts == 1
    finally:
        relay.close()
        engine.dispose()
