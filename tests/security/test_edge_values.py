"""Schema-valid edge values the fuzz run found: answered, not 500 (issue 14.7's family).

Dates at the ends of what Python represents (the day after 9999-12-31 does not
exist), an empty filter, lower-case RFC 3339 separators, a job id with a
newline on the WPS status route.
"""

from __future__ import annotations

import pytest

from tests.security.conftest import assert_problem

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "query",
    [
        "datetime=9999-12-31",
        "datetime=9999-12-31T23:59:59Z",
        "datetime=9999-12-31T23:59:59-12:00",
        "datetime=0001-01-01T00:00:00+14:00",
        "datetime=0001-01-01/9999-12-31",
        "datetime=2026-01-02t10:00:00z",
        "datetime=",
        "maxDuration=2147483647&minDuration=0",
    ],
)
def test_job_list_takes_edge_values(client, query):
    assert client.get(f"/jobs?{query}").status_code == 200


@pytest.mark.parametrize("path", ["/accounting/usage", "/accounting/dashboard"])
@pytest.mark.parametrize(
    "query",
    [
        "to=0001-01-04",
        "from=9999-12-31&to=9999-12-31",
        "from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59.999Z",
        "from=2026-01-02t10:00:00z",
    ],
)
def test_reports_take_edge_values(client, path, query):
    assert client.get(f"{path}?{query}").status_code == 200


def test_a_duration_beyond_the_documented_maximum_is_400(client):
    assert_problem(client.get("/jobs?maxDuration=27964588324594"), 400, "maxDuration")


def test_a_reversed_period_is_400(client):
    assert_problem(client.get("/accounting/usage?from=2026-02-01&to=2026-01-01"), 400, "'from'")


def test_wps_status_of_any_id_is_an_ows_report(client):
    r = client.get("/wps/status/%F3%82%91%B1%0Ax")
    assert r.status_code == 404 and b"ExceptionReport" in r.data
