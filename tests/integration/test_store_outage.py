"""The job store goes away: the API answers 503 + Retry-After, never 500, and recovers.

A real PostgreSQL outage, made on request: the test's own database stops
accepting connections (``ALLOW_CONNECTIONS false``) and every session to it is
terminated, as when the server restarts or the network to it is cut. Reads,
executions and WPS requests answer 503 with ``Retry-After`` (an OGC or OWS
exception document, no stack trace); a refused execution leaves nothing
behind; once the database is back the pool reconnects by itself and the job
accepted before the outage is still there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.app import build_services, create_app
from gateway.services import Services
from tests.conftest import make_settings
from tests.faults import scratch_database
from tests.integration.test_store_postgres import PG_URL

pytestmark = pytest.mark.postgres

SERVICE_UNAVAILABLE = (
    "http://www.opengis.net/def/exceptions/ogcapi-common-1/1.0/service-unavailable"
)


class Outage:
    """Switches one database's connections off and on again."""

    def __init__(self, admin: sa.Engine, name: str) -> None:
        self.admin, self.name = admin, name

    def _run(self, sql: str) -> None:
        with self.admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(sql))

    def begin(self) -> None:
        self._run(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
        self._run(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            f" WHERE datname = '{self.name}' AND pid <> pg_backend_pid()"
        )

    def end(self) -> None:
        self._run(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')


@pytest.fixture
def outage_services(tmp_path: Path) -> Iterator[tuple[Services, Outage]]:
    with scratch_database() as url:
        admin = sa.create_engine(PG_URL)
        services = build_services(make_settings(tmp_path, database={"url": url}))
        outage = Outage(admin, url.rsplit("/", 1)[1])
        try:
            yield services, outage
        finally:
            outage.end()
            services.close()
            admin.dispose()


def test_an_outage_of_the_job_store_is_503_with_retry_after_and_nothing_is_lost(
    outage_services: tuple[Services, Outage],
) -> None:
    services, outage = outage_services
    app = create_app(services.settings, services)
    client = app.test_client()
    body = {"inputs": {"string_input": "before"}}
    accepted = client.post(
        "/processes/echo/execution", json=body, headers={"Prefer": "respond-async"}
    )
    assert accepted.status_code == 201
    job_id = accepted.headers["Location"].rsplit("/", 1)[1]

    outage.begin()
    listed = client.get("/jobs")
    assert listed.status_code == 503 and listed.headers["Retry-After"] == "5"
    problem = listed.get_json()
    assert problem["type"] == SERVICE_UNAVAILABLE and problem["status"] == 503
    assert "job store" in problem["detail"] and "Traceback" not in listed.get_data(as_text=True)
    refused = client.post(
        "/processes/echo/execution",
        json={"inputs": {"string_input": "during"}},
        headers={"Prefer": "respond-async"},
    )
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
    wps = client.get(f"/wps?service=WPS&version=2.0.0&request=GetStatus&jobId={job_id}")
    assert wps.status_code == 503 and b"ExceptionReport" in wps.data

    outage.end()
    after = client.get("/jobs")
    assert after.status_code == 200  # the pool reconnected by itself
    jobs = after.get_json()["jobs"]
    assert [j["jobID"] for j in jobs] == [job_id]  # kept; the refused one left nothing
