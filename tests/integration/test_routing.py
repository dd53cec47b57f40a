"""Routing between the two real dev clusters: which site runs a job, and why.

Both clusters are sites (``hpcgw``: Slurm 22.05, ``mesocentre``: Slurm 24.11,
over slurmrestd). Each test submits through the job service or the HTTP
surfaces (OGC API and WPS, Flask test client) and checks the site the job
records, the reason a person reads, and -- for jobs that run -- the cluster
that really ran it (its own ``sacct``). The queue-aware test fills hpcgw's
partition with *held* jobs (they use no CPU) and cancels them afterwards.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from gateway.accounting.budgets import Scope
from gateway.accounting.periods import Period
from gateway.app import build_services, create_app
from gateway.errors import BadRequest, Forbidden, ServiceUnavailable
from gateway.identity.auth import Principal
from gateway.jobs.records import JobQuery
from gateway.jobs.states import JobState
from gateway.services import Services
from processes.registry import ProcessRegistry
from tests.clusters import HPCGW, MESOCENTRE
from tests.conftest import make_settings, require_root, worker_thread
from tests.integration.adapters import require_cluster
from tests.integration.test_two_sites import ALICE, _sites
from tests.integration.test_workflow import wait_for
from tests.workflow_fixtures import FileServer

pytestmark = pytest.mark.slurm

XML = "<doc>local data</doc>"
#: Who the HTTP surfaces see with authentication off (``auth.default_user``).
DEV_USER = Principal(sub="dev-user", username="alice", hpc_login="alice")


def _routing_sites(**extra: dict[str, Any]) -> dict[str, object]:
    sites: dict[str, Any] = _sites("slurmrest")
    for name, more in extra.items():
        sites[name] = {**sites[name], **more}
    return sites


def _services(tmp_path: Path, **site_extra: dict[str, Any]) -> Services:
    require_root("jobs run as alice in root-made workspaces")
    require_cluster(HPCGW)
    require_cluster(MESOCENTRE)
    settings = make_settings(
        tmp_path,
        sites=_routing_sites(**site_extra),
        default_site="hpcgw",
        # both idle clusters would tie on the queue: prices make mesocentre dearer
        accounting={"prices": {"hpcgw": {"*": 0.05}, "mesocentre": {"*": 0.08}}},
    )
    return build_services(settings)


@pytest.fixture
def two_sites(cluster: str, tmp_path: Path) -> Iterator[Services]:
    services = _services(tmp_path)
    yield services
    services.close()


def _reason(services: Services, job_id: str) -> tuple[str, str]:
    job = services.store.get(job_id)
    return job.site, job.routing_reason or ""


def _dismiss(services: Services, principal: Principal, *job_ids: str) -> None:
    for job_id in job_ids:
        services.jobs.dismiss(principal, job_id)


def test_an_explicit_choice_runs_there_and_says_so(two_sites: Services) -> None:
    body = {"inputs": {"string_input": "pinned"}, "hpcSite": "mesocentre"}
    with worker_thread(two_sites):
        job = two_sites.jobs.submit(ALICE, "echo", body)
        done = wait_for(two_sites, job.id, {JobState.SUCCESSFUL, JobState.FAILED})
    assert done.state is JobState.SUCCESSFUL, done.message
    assert (done.site, done.routing_reason) == ("mesocentre", "mesocentre requested by the client")
    assert MESOCENTRE.sacct_field(done.scheduler_job_id or "", "JobName") == f"hpcgw-{job.id}"


def test_without_a_choice_idle_sites_tie_on_the_queue_and_price_decides(
    two_sites: Services,
) -> None:
    job = two_sites.jobs.submit(ALICE, "echo", {"inputs": {"string_input": "x"}})
    _dismiss(two_sites, ALICE, job.id)
    site, reason = _reason(two_sites, job.id)
    assert site == "hpcgw"
    assert reason == "cheapest: hpcgw 0.05 vs mesocentre 0.08 EUR/core-hour"


def test_data_local_to_a_site_sends_the_job_there(
    cluster: str, tmp_path: Path, file_server: FileServer
) -> None:
    (file_server.root / "scene.xml").write_text(XML)
    mirror = file_server.href("")
    services = _services(tmp_path, mesocentre={"data": {"url_prefixes": [mirror]}})
    try:
        body = {"inputs": {"xml_input": {"href": file_server.href("scene.xml")}}}
        with worker_thread(services):
            job = services.jobs.submit(ALICE, "echo", body)
            done = wait_for(services, job.id, {JobState.SUCCESSFUL, JobState.FAILED})
    finally:
        services.close()
    assert done.state is JobState.SUCCESSFUL, done.message
    assert done.site == "mesocentre"
    assert done.routing_reason == f"data local to mesocentre (input 'xml_input': mirror {mirror})"
    assert (done.results or {}).get("xml_output") == XML
    assert MESOCENTRE.sacct_field(done.scheduler_job_id or "", "User") == "alice"


def test_a_process_installed_on_one_site_only_goes_there(two_sites: Services) -> None:
    echo = two_sites.registry.get("echo")
    only_meso = echo.model_copy(
        update={"hpc": echo.hpc.model_copy(update={"sites": ["mesocentre"]})}
    )
    two_sites.jobs.registry = ProcessRegistry([only_meso])
    job = two_sites.jobs.submit(ALICE, "echo", {"inputs": {"string_input": "x"}})
    _dismiss(two_sites, ALICE, job.id)
    assert _reason(two_sites, job.id) == (
        "mesocentre",
        "only eligible site (hpcgw: process 'echo' is not installed there)",
    )
    with pytest.raises(BadRequest, match="process 'echo' is not installed there"):
        two_sites.jobs.submit(ALICE, "echo", {"inputs": {}, "hpcSite": "hpcgw"})


@pytest.fixture
def login_only_on_hpcgw() -> Iterator[str]:
    """A Slurm user with an association in ``gep`` on hpcgw and none on mesocentre."""
    login = f"rt{uuid.uuid4().hex[:8]}"
    HPCGW.run("sacctmgr", "-i", "add", "user", login, "account=gep")
    try:
        yield login
    finally:
        HPCGW.run("sacctmgr", "-i", "delete", "user", login, check=False)


def test_a_user_without_association_on_a_site_is_routed_to_the_other(
    two_sites: Services, login_only_on_hpcgw: str
) -> None:
    user = Principal(
        sub=f"sub-{login_only_on_hpcgw}", username="carol", hpc_login=login_only_on_hpcgw
    )
    job = two_sites.jobs.submit(user, "echo", {"inputs": {"string_input": "x"}})
    _dismiss(two_sites, user, job.id)
    site, reason = _reason(two_sites, job.id)
    assert site == "hpcgw"
    assert reason == f"only eligible site (mesocentre: no Slurm association for '{user.hpc_login}')"
    with pytest.raises(BadRequest, match="no Slurm association"):
        two_sites.jobs.submit(user, "echo", {"inputs": {}, "hpcSite": "mesocentre"})


def test_a_user_without_association_anywhere_is_refused_before_a_job_exists(
    two_sites: Services,
) -> None:
    nobody = Principal(sub="sub-nobody", username="nobody", hpc_login="rtnoassoc")
    with pytest.raises(Forbidden, match=r"hpcgw: no Slurm association.*mesocentre: no Slurm"):
        two_sites.jobs.submit(nobody, "echo", {"inputs": {}})
    assert two_sites.store.page(JobQuery()).jobs == []


@pytest.fixture
def held_jobs_on_hpcgw() -> Iterator[list[str]]:
    """hpcgw's partition queued with held jobs: 3 x 1 CPU x 10 h of pending work."""
    ids = []
    try:
        for _ in range(3):
            out = HPCGW.run(
                "sbatch", "--parsable", "--hold", "-p", HPCGW.partition, "-n", "1", "-t",
                "600", "-J", "hpcgw-routing-held", "--wrap", "sleep 1",
            )  # fmt: skip
            ids.append(out.stdout.strip().split(";")[0])
        yield ids
    finally:
        HPCGW.scancel(*ids)


def test_a_queued_site_loses_to_an_idle_one(
    two_sites: Services, held_jobs_on_hpcgw: list[str]
) -> None:
    job = two_sites.jobs.submit(ALICE, "echo", {"inputs": {"string_input": "x"}})
    _dismiss(two_sites, ALICE, job.id)
    site, reason = _reason(two_sites, job.id)
    assert site == "mesocentre", reason
    assert reason.startswith("queue: mesocentre 0 min vs hpcgw ")
    assert reason.endswith(" h")  # hours of held work ahead at hpcgw


def test_bad_site_requests_are_400_and_no_eligible_site_is_503(
    cluster: str, tmp_path: Path
) -> None:
    services = _services(tmp_path, mesocentre={"enabled": False})
    try:
        with pytest.raises(BadRequest, match="unknown site 'atlantis'"):
            services.jobs.submit(ALICE, "echo", {"inputs": {}, "hpcSite": "atlantis"})
        with pytest.raises(BadRequest, match="disabled by the operator"):
            services.jobs.submit(ALICE, "echo", {"inputs": {}, "hpcSite": "mesocentre"})
        with pytest.raises(BadRequest, match="'hpcSite' must be the name"):
            services.jobs.submit(ALICE, "echo", {"inputs": {}, "hpcSite": 7})
    finally:
        services.close()
    (tmp_path / "down").mkdir()
    down = _services(
        tmp_path / "down",
        hpcgw={"enabled": False},
        mesocentre={"slurmrest": {"url": "http://127.0.0.1:9", "jwt_key_file": MESOCENTRE.jwt_key}},
    )
    try:
        with pytest.raises(ServiceUnavailable) as unavailable:
            down.jobs.submit(ALICE, "echo", {"inputs": {}})
    finally:
        down.close()
    assert unavailable.value.headers["Retry-After"] == "60"
    assert "hpcgw: disabled by the operator; mesocentre: down (" in unavailable.value.detail


@pytest.fixture
def client(two_sites: Services) -> FlaskClient:
    return create_app(two_sites.settings, two_sites).test_client()


def test_ogc_api_execute_status_and_html_show_the_site_and_reason(
    two_sites: Services, client: FlaskClient
) -> None:
    body = {"inputs": {"string_input": "x"}, "hpcSite": "mesocentre"}
    created = client.post(
        "/processes/echo/execution", json=body, headers={"Prefer": "respond-async"}
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    job_url = created.headers["Location"].split("5000", 1)[-1]
    status = client.get(job_url).get_json()
    assert status["hpcSite"] == "mesocentre"
    assert status["routingReason"] == "mesocentre requested by the client"
    assert status["message"] == "Job accepted for mesocentre: mesocentre requested by the client"
    page = client.get(job_url + "?f=html").get_data(as_text=True)
    assert '<span id="job-routing-reason">mesocentre requested by the client</span>' in page
    _dismiss(two_sites, DEV_USER, status["jobID"])
    refused = client.post("/processes/echo/execution", json={**body, "hpcSite": "atlantis"})
    assert refused.status_code == 400
    assert "unknown site 'atlantis'" in refused.get_json()["detail"]


def test_wps_hpc_site_input_pins_the_job(two_sites: Services, client: FlaskClient) -> None:
    described = client.get("/wps?service=WPS&version=1.0.0&request=DescribeProcess&identifier=echo")
    assert "<ows:Identifier>hpc_site</ows:Identifier>" in described.get_data(as_text=True)
    answer = client.get(
        "/wps?service=WPS&version=1.0.0&request=Execute&identifier=echo"
        "&DataInputs=hpc_site=mesocentre;string_input=wps&storeExecuteResponse=true&status=true"
    )
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200, text
    assert "Job accepted for mesocentre: mesocentre requested by the client" in text
    job_id = re.search(r"/status/([0-9a-f-]{36})", text)
    assert job_id is not None, text
    _dismiss(two_sites, DEV_USER, job_id.group(1))
    assert _reason(two_sites, job_id.group(1)) == (
        "mesocentre",
        "mesocentre requested by the client",
    )
    refused = client.get(
        "/wps?service=WPS&version=1.0.0&request=Execute&identifier=echo"
        "&DataInputs=hpc_site=atlantis&storeExecuteResponse=true&status=true"
    )
    assert refused.status_code == 400
    assert "unknown site" in refused.get_data(as_text=True)


def test_a_quotation_prices_every_site_marks_the_pick_and_can_pin_one(
    client: FlaskClient,
) -> None:
    body = {"inputs": {"string_input": "x"}}
    quote = client.post("/processes/echo/quotations", json=body)
    assert quote.status_code == 200, quote.get_data(as_text=True)
    doc = quote.get_json()
    offers = {o["site"]: o for o in doc["sites"]}
    assert set(offers) == {"hpcgw", "mesocentre"}
    assert (doc["hpcSite"], doc["site"]) == ("hpcgw", "hpcgw")  # the top-level quote is the pick
    assert doc["routingReason"] == "cheapest: hpcgw 0.05 vs mesocentre 0.08 EUR/core-hour"
    assert offers["hpcgw"]["selected"] and not offers["mesocentre"]["selected"]
    assert offers["mesocentre"]["pricePerCoreHour"] == 0.08
    assert offers["mesocentre"]["expectedStartSeconds"] == 0.0
    assert offers["mesocentre"]["cost"] > offers["hpcgw"]["cost"]
    assert offers["mesocentre"]["pin"] == {"hpcSite": "mesocentre"}
    pinned = client.post(
        "/processes/echo/quotations", json={**body, **offers["mesocentre"]["pin"]}
    ).get_json()
    assert (pinned["hpcSite"], pinned["site"]) == ("mesocentre", "mesocentre")
    assert pinned["price_per_core_hour"] == 0.08
    refused = client.post("/processes/echo/quotations", json={**body, "hpcSite": "atlantis"})
    assert refused.status_code == 400


def test_a_spent_site_budget_sends_the_job_to_the_other_site(two_sites: Services) -> None:
    """A per-site budget takes its site out of routing; pinning that site is 403."""
    assert two_sites.accounting is not None
    two_sites.accounting.budgets.set(
        Scope.USER, "alice", Period.MONTH, 0.0, actor="test", site="hpcgw"
    )
    job = two_sites.jobs.submit(ALICE, "echo", {"inputs": {"string_input": "x"}})
    _dismiss(two_sites, ALICE, job.id)
    site, reason = _reason(two_sites, job.id)
    assert site == "mesocentre"  # dearer, but hpcgw's budget is spent
    assert reason.startswith(
        "only eligible site (hpcgw: budget: the monthly budget of user 'alice' at site 'hpcgw'"
    ), reason
    with pytest.raises(Forbidden, match="at site 'hpcgw'"):
        two_sites.jobs.submit(ALICE, "echo", {"inputs": {}, "hpcSite": "hpcgw"})
