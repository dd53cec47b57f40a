"""``GET /jobs`` time filters (18-062r2 /req/job-list): datetime, minDuration, maxDuration.

Over Flask's test client on a SQLite store (the same filters run on PostgreSQL
in tests/integration/test_store_postgres.py). Jobs get their times through
the store, so every expectation is exact; each filter test also shows that
without the filter the other jobs *are* listed, so an ignored filter fails.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient

from gateway.app import create_app
from gateway.errors import BadRequest
from gateway.jobs.records import CreatedRange, JobUpdate, NewJob, Owner
from gateway.jobs.states import JobState
from gateway.ogcapi.job_filters import parse_datetime, parse_durations
from gateway.services import Services
from tests.ogc_schemas import openapi_components, validate

pytestmark = pytest.mark.unit

BASE = "http://gw.example:5000"
ME = Owner("dev-user", "alice", "alice")  # NoAuth's default user
BOB = Owner("sub-bob", "bob", "bob")
T0 = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"server": {"base_url": BASE}}


@pytest.fixture
def client(services: Services) -> FlaskClient:
    app = create_app(services.settings, services)
    app.testing = True
    return app.test_client()


def job_at(services: Services, created: datetime, owner: Owner = ME, **times: Any) -> str:
    """A job created at ``created`` (and started/finished as given)."""
    job = services.store.create(
        NewJob(
            id=str(uuid.uuid4()),
            process_id="echo",
            process_version="1.0.0",
            owner=owner,
            site="dev",
            inputs={"string_input": "hi"},
        )
    )
    services.store.update(job.id, JobUpdate(created=created, **times))
    return job.id


def listed(client: FlaskClient, query: str) -> list[str]:
    """Job ids of every page of ``GET /jobs?<query>``, following ``next`` links."""
    url: str | None = f"/jobs?{query}"
    ids: list[str] = []
    while url:
        r = client.get(url)
        assert r.status_code == 200, r.get_json()
        doc = r.get_json()
        ids += [j["jobID"] for j in doc["jobs"]]
        nxt = [lk["href"] for lk in doc["links"] if lk["rel"] == "next"]
        url = nxt[0].removeprefix(BASE) if nxt else None
    return ids


def test_list_entries_are_the_jobs_status_documents(
    client: FlaskClient, services: Services
) -> None:
    """The list reads only a few columns; what it shows must not differ from ``/jobs/{id}``."""
    accepted = job_at(services, T0)
    running = job_at(services, T0 + timedelta(minutes=1))
    services.store.update(
        running, JobUpdate(scheduler_job_id="4242", progress=30, message="step 3")
    )
    assert services.store.transition(running, JobState.RUNNING)
    done = job_at(services, T0 + timedelta(minutes=2))
    assert services.store.transition(done, JobState.SUCCESSFUL, JobUpdate(results={"x": 1}))
    services.store.update(
        done, JobUpdate(extra={"publication": {"files": {}}, "staged_inputs": {}})
    )
    expired = job_at(services, T0 + timedelta(minutes=3))
    assert services.store.transition(expired, JobState.SUCCESSFUL)
    services.store.update(expired, JobUpdate(extra={"publication": {"expired": "2026-04-01"}}))
    doc = client.get("/jobs").get_json()
    components = openapi_components()
    validate(doc, "jobList", components)
    for entry in doc["jobs"]:
        assert entry == client.get(f"/jobs/{entry['jobID']}").get_json()
    rels = {e["jobID"]: {lk["rel"] for lk in e["links"]} for e in doc["jobs"]}
    assert "describedby" in rels[done] and "describedby" not in rels[expired]
    assert "monitor" in rels[running] and "monitor" in rels[accepted]
    assert [e["jobID"] for e in doc["jobs"]] == [expired, done, running, accepted]


# -- datetime -----------------------------------------------------------------------


def test_datetime_instant_interval_and_open_ends(client: FlaskClient, services: Services) -> None:
    ids = [job_at(services, T0 + timedelta(days=d)) for d in range(5)]  # 1, 2, ... 5 March
    job_at(services, T0 + timedelta(days=2), owner=BOB)  # never listed for me
    assert listed(client, "") == ids[::-1]
    assert listed(client, "datetime=2026-03-03") == [ids[2]]  # the whole (UTC) day
    assert listed(client, "datetime=2026-03-02T12:00:00Z/2026-03-04T12:00:00Z") == ids[3:0:-1]
    assert listed(client, "datetime=2026-03-02/2026-03-03") == [ids[2], ids[1]]
    assert listed(client, "datetime=../2026-03-02T12:00:00Z") == [ids[1], ids[0]]
    assert listed(client, "datetime=2026-03-04T00:00:00Z/..") == [ids[4], ids[3]]
    assert listed(client, "datetime=2026-03-04T00:00:00Z/") == [ids[4], ids[3]]
    assert listed(client, "datetime=2026-03-10T00:00:00Z/..") == []


def test_datetime_offsets_and_precision(client: FlaskClient, services: Services) -> None:
    job = job_at(services, T0)  # 12:00:00.250 UTC
    job_at(services, T0 + timedelta(seconds=1))
    created = client.get(f"/jobs/{job}").get_json()["created"]
    assert created == "2026-03-01T12:00:00.250Z"
    # a status document's own `created` finds its job (the millisecond it names)
    assert listed(client, f"datetime={created}") == [job]
    assert listed(client, "datetime=2026-03-01T12:00:00Z") == [job]  # that whole second
    assert listed(client, "datetime=2026-03-01T12:00:00.251Z") == []
    # the same instant with an offset; '+' encoded, and '+' sent raw (arrives as a space)
    assert listed(client, "datetime=2026-03-01T13:00:00%2B01:00") == [job]
    assert listed(client, "datetime=2026-03-01T13:00:00+01:00") == [job]
    assert listed(client, "datetime=2026-03-01T07:00:00-05:00") == [job]


def test_filters_are_kept_in_links_and_pages(client: FlaskClient, services: Services) -> None:
    ids = [job_at(services, T0 + timedelta(hours=h)) for h in range(7)]
    query = "datetime=2026-03-01T13:00:00Z/2026-03-01T17:00:00Z&limit=2"
    r = client.get(f"/jobs?{query}")
    validate(r.get_json(), "jobList", openapi_components())
    nxt = next(lk["href"] for lk in r.get_json()["links"] if lk["rel"] == "next")
    params = parse_qs(urlsplit(nxt).query)
    assert params["datetime"] == ["2026-03-01T13:00:00Z/2026-03-01T17:00:00Z"]
    assert params["limit"] == ["2"]
    assert listed(client, query) == ids[5:0:-1]  # hours 5..1, over three pages


# -- durations ----------------------------------------------------------------------


def test_min_and_max_duration(client: FlaskClient, services: Services) -> None:
    now = datetime.now(UTC)
    hour_ago = now - timedelta(hours=1)

    def ran(job_id: str, state: JobState, seconds: int, until: datetime | None) -> str:
        started = (until or now) - timedelta(seconds=seconds)
        times = {"finished": until} if until else {}
        assert services.store.transition(job_id, state, JobUpdate(started=started, **times))
        return job_id

    never = job_at(services, now - timedelta(hours=3))  # accepted, never started
    quick = ran(job_at(services, now - timedelta(hours=2)), JobState.SUCCESSFUL, 5, hour_ago)
    slow = ran(
        job_at(services, now - timedelta(hours=2, seconds=1)), JobState.FAILED, 120, hour_ago
    )
    # running for 60 s now, and counting: its duration is measured up to the request
    running = ran(job_at(services, now - timedelta(minutes=5)), JobState.RUNNING, 60, None)
    assert set(listed(client, "")) == {never, quick, slow, running}
    assert set(listed(client, "minDuration=0")) == {quick, slow, running}
    assert listed(client, "maxDuration=5") == [quick]
    assert set(listed(client, "minDuration=6")) == {slow, running}
    assert listed(client, "minDuration=30&maxDuration=119") == [running]
    assert listed(client, "minDuration=120&maxDuration=120") == [slow]
    assert listed(client, "minDuration=6&status=failed") == [slow]
    assert listed(client, "minDuration=30&limit=1") == [running, slow]


# -- parsing ------------------------------------------------------------------------


def test_parse_datetime_spans() -> None:
    second = parse_datetime("2026-03-01T12:00:00Z")
    assert second == CreatedRange(
        datetime(2026, 3, 1, 12, tzinfo=UTC), datetime(2026, 3, 1, 12, 0, 1, tzinfo=UTC)
    )
    micro = parse_datetime("2026-03-01t12:00:00.1234567z")  # digits past 6 are dropped
    assert micro.start == datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert micro.end == datetime(2026, 3, 1, 12, 0, 0, 123457, tzinfo=UTC)
    assert parse_datetime("../2026-03-01") == CreatedRange(None, datetime(2026, 3, 2, tzinfo=UTC))
    assert parse_datetime("2026-03-01/2026-03-01").end == datetime(2026, 3, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "..",
        "/",
        "../..",
        "2026-03-01T12:00Z",
        "2026-03-01T25:00:00Z",
        "2026-3-1",
        "now",
        "1/2/3",
    ],
)
def test_parse_datetime_refuses(raw: str) -> None:
    with pytest.raises(BadRequest, match="datetime"):
        parse_datetime(raw)


def test_parse_durations() -> None:
    assert parse_durations(None, None) is None
    assert parse_durations("", " ") is None
    assert parse_durations("5", None) is not None
    for low, high in (("-1", None), (None, "1e3"), ("٣", None), ("7", "6")):
        with pytest.raises(BadRequest, match="Duration"):
            parse_durations(low, high)
