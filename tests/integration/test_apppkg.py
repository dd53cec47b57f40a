"""OGC API - Processes Part 2 against the real parts: Keycloak tokens, Slurm, the job store.

A deployer deploys a CWL CommandLineTool through ``POST /processes`` with a
bearer token of the real Keycloak (realm ``gep``), executes it asynchronously
and the job runs ``cwltool`` on the real dev cluster as the deployer's HPC
login (``sacct`` User); replace, undeploy and the refusals (409, 403, 400).

The realm role ``hpc-deployer`` is created here when the realm does not have
it yet (and removed again): ``deploy/keycloak/realm-gep.json`` declares it for
fresh realms. Two deployers are created for this module: ``dora`` (HPC login
``alice``) and ``erin`` (HPC login ``gep_bob``, never runs a job here); ``bob``
has no deployer role but, like every user, may execute a deployed process.

Ownership rule under test: the user who deployed a process owns it; only that
user or an HPC admin may replace or undeploy it.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from gateway.app import build_services, create_app
from gateway.identity.identity_map import IdentityStatus, IdentityStore
from gateway.jobs.states import JobState
from gateway.services import Services
from tests.conftest import make_settings, sacct_settled, worker_thread
from tests.identity_fixtures import (
    Keycloak,
    auth_config,
    delete_users,
    fresh_user,
    keycloak,
    password_token,
)
from tests.polling import eventually
from tests.unit.wps_support import OWS2, assert_valid
from tests.workflow_fixtures import FileServer, file_server

pytestmark = pytest.mark.slurm

__all__ = ["file_server", "keycloak"]

DATA = Path(__file__).resolve().parent.parent / "apppkg_data"
ROLE = "hpc-deployer"
CWL_YAML = "application/cwl+yaml"


@dataclass
class Gateway:
    client: FlaskClient
    services: Services
    tokens: dict[str, str]

    def h(self, who: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}", **extra}

    def deploy(self, who: str, body: bytes | str, content_type: str = CWL_YAML, **kw: Any):
        return self.client.post(
            "/processes", data=body, headers=self.h(who, **{"Content-Type": content_type}), **kw
        )


def _ensure_role(kc: Keycloak) -> bool:
    """Create the realm role when missing; True when this module created it."""
    admin = kc.admin()
    if any(r["name"] == ROLE for r in admin.get_realm_roles()):
        return False
    admin.create_realm_role({"name": ROLE, "description": "May deploy CWL processes"})
    return True


@contextlib.contextmanager
def deployer_gateway(keycloak: Keycloak, folder: Path, **overrides: object) -> Iterator[Gateway]:
    """A gateway (with its worker) on the real Keycloak: deployers dora and erin, user bob."""
    created = _ensure_role(keycloak)
    users = {"dora": "alice", "erin": "gep_bob"}
    for name in users:
        fresh_user(keycloak, name, roles=("hpc-user", ROLE))
    settings = make_settings(folder, auth=auth_config(keycloak), **overrides)
    services = build_services(settings)
    identities = IdentityStore(services.engine)
    for name, login in {**users, "bob": "bob"}.items():
        identities.save(keycloak.user_id(name), name, login, IdentityStatus.ACTIVE, ["gep"])
    tokens = {name: password_token(keycloak, name) for name in ("dora", "erin", "bob", "admin")}
    app = create_app(settings, services)
    try:
        with worker_thread(services):
            yield Gateway(app.test_client(), services, tokens)
    finally:
        services.close()
        delete_users(keycloak, *users)
        if created:
            keycloak.admin().delete_realm_role(ROLE)


@pytest.fixture(scope="module")
def gw(
    cluster: str, keycloak: Keycloak, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    with deployer_gateway(keycloak, tmp_path_factory.mktemp("apppkg")) as gateway:
        yield gateway


def _wait(gw: Gateway, job_id: str) -> Any:
    final = {JobState.SUCCESSFUL, JobState.FAILED, JobState.DISMISSED}

    def done() -> Any:
        job = gw.services.store.get(job_id)
        return job if job.state in final else None

    return eventually(done, 180, f"job {job_id} to finish", every=0.5)


def _execute(gw: Gateway, who: str, process_id: str, inputs: dict[str, Any]) -> str:
    resp = gw.client.post(
        f"/processes/{process_id}/execution",
        json={"inputs": inputs},
        headers=gw.h(who, Prefer="respond-async"),
    )
    assert resp.status_code == 201, resp.get_json()
    return str(resp.headers["Location"]).rstrip("/").rsplit("/", 1)[-1]


def _pinned_refusal(gw: Gateway, process_id: str, inputs: dict[str, Any], site: str) -> str:
    """The 400's detail for an execution pinned (``hpcSite``) to a site that cannot run it."""
    resp = gw.client.post(
        f"/processes/{process_id}/execution",
        json={"inputs": inputs, "hpcSite": site},
        headers=gw.h("dora", Prefer="respond-async"),
    )
    assert resp.status_code == 400, resp.get_json()
    return str(resp.get_json()["detail"])


def _output_text(gw: Gateway, who: str, job_id: str, name: str) -> str:
    results = gw.client.get(f"/jobs/{job_id}/results", headers=gw.h(who)).get_json()
    href = results[name]["href"]
    path = href.split("://", 1)[1].split("/", 1)[1]
    resp = gw.client.get(f"/{path}", headers=gw.h(who))
    assert resp.status_code == 200, resp.data
    return resp.get_data(as_text=True)


def test_deploy_execute_as_the_user_replace_and_undeploy(
    gw: Gateway, file_server: FileServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.audit")
    text = (DATA / "wordcount.cwl").read_text()
    resp = gw.deploy("dora", text)
    assert resp.status_code == 201, resp.get_json()
    assert resp.headers["Location"].endswith("/processes/wordcount")
    try:
        # described, listed, and its package given back
        desc = gw.client.get("/processes/wordcount").get_json()
        assert desc["inputs"]["text"]["schema"]["type"] == "string"
        assert desc["outputs"]["counts"]["schema"]["contentMediaType"] == "text/plain"
        assert gw.client.get("/processes/wordcount?f=html").status_code == 200
        wps = "/wps?service=WPS&version=2.0.0&request=DescribeProcess&identifier=wordcount"
        assert b"ComplexData" in gw.client.get(wps).data
        listed = gw.client.get("/processes").get_json()["processes"]
        assert "wordcount" in {p["id"] for p in listed}
        package = gw.client.get("/processes/wordcount/package", headers=gw.h("bob"))
        assert package.status_code == 200 and package.mimetype == "application/cwl+json"
        assert package.get_json()["baseCommand"] == ["wc", "-w"]
        # a second deploy of the same id
        assert gw.deploy("erin", text).status_code == 409

        # executed on the cluster as dora's HPC login, with an input by reference
        (file_server.root / "poem.txt").write_text("one two three\nfour five\n")
        job_id = _execute(gw, "dora", "wordcount", {"text": {"href": file_server.href("poem.txt")}})
        job = _wait(gw, job_id)
        assert job.state is JobState.SUCCESSFUL, job.message
        assert sacct_settled(job.scheduler_job_id or "", "User", "alice") == "alice"
        assert _output_text(gw, "dora", job_id, "counts").split()[0] == "5"

        # replaced by its owner (now: lines) between two submissions: the job accepted
        # before the replace runs the package it was accepted with
        poem = {"text": {"href": file_server.href("poem.txt")}}
        before = _execute(gw, "dora", "wordcount", poem)
        replaced = text.replace("[wc, -w]", "[wc, -l]")
        headers = gw.h("dora", **{"Content-Type": CWL_YAML})
        put = gw.client.put("/processes/wordcount", data=replaced, headers=headers)
        assert put.status_code == 204, put.get_json()
        after = _execute(gw, "dora", "wordcount", poem)
        for job_id, expected in ((before, "5"), (after, "2")):
            job = _wait(gw, job_id)
            assert job.state is JobState.SUCCESSFUL, job.message
            assert _output_text(gw, "dora", job_id, "counts").split()[0] == expected
        versions = {gw.services.store.get(j).process_version for j in (before, after)}
        assert gw.services.registry.get("wordcount").run_version in versions
        assert len(versions) == 2
        # another deployer may neither replace nor undeploy it
        other = gw.client.put(
            "/processes/wordcount",
            data=replaced,
            headers=gw.h("erin", **{"Content-Type": CWL_YAML}),
        )
        assert other.status_code == 403 and "deployed by 'dora'" in other.get_json()["detail"]
        assert gw.client.delete("/processes/wordcount", headers=gw.h("erin")).status_code == 403
        # WPS clients see it too
        caps = gw.client.get("/wps?service=WPS&request=GetCapabilities")
        assert b"wordcount" in caps.data
    finally:
        gone = gw.client.delete("/processes/wordcount", headers=gw.h("dora"))
    assert gone.status_code == 204
    assert gw.client.get("/processes/wordcount").status_code == 404
    audit = [r.getMessage() for r in caplog.records if r.name == "gateway.audit"]
    for verb in ("deployed", "replaced", "undeployed"):
        assert any(f"process wordcount {verb} by dora" in line for line in audit), audit
    assert gw.client.delete("/processes/wordcount", headers=gw.h("dora")).status_code == 404


def test_python_one_liner_keeps_shell_metacharacters_as_text(gw: Gateway) -> None:
    resp = gw.deploy("erin", (DATA / "shout.cwl").read_text())
    assert resp.status_code == 201, resp.get_json()
    try:
        message = "hi; rm -rf ~ && echo $(id) `id` | cat > /tmp/x"
        job_id = _execute(gw, "bob", "shout", {"message": message})
        job = _wait(gw, job_id)
        assert job.state is JobState.SUCCESSFUL, job.message
        assert sacct_settled(job.scheduler_job_id or "", "User", "bob") == "bob"
        result = json.loads(_output_text(gw, "bob", job_id, "result"))
        assert result == {"text": message.upper(), "length": len(message)}
    finally:
        assert gw.client.delete("/processes/shout", headers=gw.h("admin")).status_code == 204


def test_a_two_step_workflow_runs_in_one_job(gw: Gateway) -> None:
    resp = gw.deploy("dora", (DATA / "wordreport.cwl").read_text())
    assert resp.status_code == 201, resp.get_json()
    try:
        # the File input given inline, as text
        inputs = {"text": "the quick brown fox jumps", "title": "fox"}
        job_id = _execute(gw, "dora", "wordreport", inputs)
        job = _wait(gw, job_id)
        assert job.state is JobState.SUCCESSFUL, job.message
        assert sacct_settled(job.scheduler_job_id or "", "User", "alice") == "alice"
        report = json.loads(_output_text(gw, "dora", job_id, "report"))
        assert report == {"title": "fox", "words": 5}
    finally:
        assert gw.client.delete("/processes/wordreport", headers=gw.h("dora")).status_code == 204


def test_ogcapppkg_deploy_with_description(gw: Gateway) -> None:
    import yaml

    unit = yaml.safe_load((DATA / "wordcount.cwl").read_text())
    body = {
        "processDescription": {"id": "wc-pkg", "title": "Words (package)", "version": "2.1.0"},
        "executionUnit": {"unit": unit, "config": {"cpuMin": 2, "memoryMin": 512}},
    }
    resp = gw.deploy("dora", json.dumps(body), "application/ogcapppkg+json")
    assert resp.status_code == 201, resp.get_json()
    try:
        desc = gw.client.get("/processes/wc-pkg").get_json()
        assert (desc["title"], desc["version"]) == ("Words (package)", "2.1.0")
        resources = gw.services.registry.get("wc-pkg").hpc.resources
        assert (resources.cores, resources.memory_mb) == (2, 512)
        pkg = gw.client.get(
            "/processes/wc-pkg/package",
            headers=gw.h("dora", Accept="application/ogcapppkg+json"),
        ).get_json()
        assert pkg["executionUnit"]["unit"]["id"] == "wordcount"
        assert pkg["processDescription"]["id"] == "wc-pkg"
    finally:
        gw.client.delete("/processes/wc-pkg", headers=gw.h("dora"))


@pytest.mark.parametrize(
    ("who", "method", "path", "status"),
    [
        ("bob", "POST", "/processes", 403),  # no hpc-deployer role
        (None, "POST", "/processes", 401),  # no token at all
        ("dora", "PUT", "/processes/echo", 403),  # built-in: immutable
        ("dora", "DELETE", "/processes/echo", 403),
        ("admin", "DELETE", "/processes/ndvi", 403),
        ("dora", "POST", "/processes", 409),  # the built-in id exists
        ("dora", "DELETE", "/processes/no-such", 404),
    ],
)
def test_refusals(gw: Gateway, who: str | None, method: str, path: str, status: int) -> None:
    body = (DATA / "wordcount.cwl").read_text().replace("id: wordcount", "id: echo")
    headers = gw.h(who, **{"Content-Type": CWL_YAML}) if who else {"Content-Type": CWL_YAML}
    resp = gw.client.open(path, method=method, data=body, headers=headers)
    assert resp.status_code == status, resp.get_json()
    doc = resp.get_json()
    assert doc["status"] == status and doc["detail"]
    if status == 403 and who == "dora":
        assert doc["type"].endswith("/immutable-process")
    if status == 409:
        assert doc["type"].endswith("/duplicated-process")


def test_invalid_cwl_is_400_with_the_message_and_line(gw: Gateway) -> None:
    bad = (
        "cwlVersion: v1.2\nclass: CommandLineTool\nid: bad\nbaseCommand: echo\n"
        "inputs:\n  x: {type: Fle}\noutputs: []\n"
    )
    resp = gw.deploy("dora", bad)
    assert resp.status_code == 400
    detail = resp.get_json()["detail"]
    assert "Fle" in detail and "package.cwl:6:" in detail
    assert "/tmp/" not in detail


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("a: &a [x, x]\nb: [*a, *a, *a]\n", CWL_YAML, 400),  # YAML alias (billion laughs)
        ("cwlVersion: v1.2\nx: " + "[" * 5000 + "]" * 5000, CWL_YAML, 400),  # deep nesting
        ('{"cwlVersion": "v1.2", "x": ' + "[" * 5000 + "]" * 5000 + "}", "application/json", 400),
        (
            "cwlVersion: v1.2\nclass: CommandLineTool\ninputs: {$import: /etc/passwd}\n",
            CWL_YAML,
            400,
        ),
        ("x" * (300 * 1024), CWL_YAML, 413),
        ("cwlVersion: v1.2", "text/plain", 415),
        ("", CWL_YAML, 400),
    ],
)
def test_hostile_bodies_get_a_clear_4xx(
    gw: Gateway, body: str, content_type: str, status: int
) -> None:
    resp = gw.deploy("dora", body, content_type)
    assert resp.status_code == status, resp.get_json()
    doc = resp.get_json()
    assert doc["status"] == status and doc["detail"] and "Traceback" not in doc["detail"]


WPS = {"wps": "http://www.opengis.net/wps/2.0", "xlink": "http://www.w3.org/1999/xlink"}


def _wps(gw: Gateway, who: str, query: str = "", body: bytes | None = None) -> Any:
    """One WPS request (a KVP GET, or an XML POST), its answer parsed and schema-checked."""
    if body is None:
        resp = gw.client.get(f"/wps?service=WPS&{query}", headers=gw.h(who))
    else:
        resp = gw.client.post("/wps", data=body, headers=gw.h(who, **{"Content-Type": "text/xml"}))
    assert resp.status_code == 200, resp.data
    return assert_valid(resp.data)


def test_wps_clients_execute_a_deployed_process(gw: Gateway, file_server: FileServer) -> None:
    """WPS 2.0 (async, input by reference, output by reference) and WPS 1.0 (sync, inline
    text input, raw output) run a deployed CWL tool on the cluster as the user."""
    text = (DATA / "wordcount.cwl").read_text().replace("id: wordcount", "id: wc-wps")
    assert gw.deploy("dora", text).status_code == 201
    try:
        described = _wps(gw, "dora", "version=2.0.0&request=DescribeProcess&identifier=wc-wps")
        names = described.xpath("//ows:Identifier/text()", namespaces={"ows": OWS2})
        assert {"wc-wps", "text", "counts"} <= set(names)
        (file_server.root / "poem.txt").write_text("one two three\nfour five\n")
        execute = (
            '<wps:Execute xmlns:wps="http://www.opengis.net/wps/2.0" '
            'xmlns:ows="http://www.opengis.net/ows/2.0" xmlns:xlink="http://www.w3.org/1999/xlink" '
            'service="WPS" version="2.0.0" mode="async" response="document">'
            "<ows:Identifier>wc-wps</ows:Identifier>"
            f'<wps:Input id="text"><wps:Reference xlink:href="{file_server.href("poem.txt")}"/>'
            '</wps:Input><wps:Output id="counts" transmission="reference"/></wps:Execute>'
        )
        accepted = _wps(gw, "dora", body=execute.encode())
        job_id = accepted.xpath("wps:JobID/text()", namespaces=WPS)[0]
        kvp = f"version=2.0.0&jobId={job_id}&request="

        def succeeded() -> bool:
            status = _wps(gw, "dora", kvp + "GetStatus").xpath("wps:Status/text()", namespaces=WPS)
            assert status[0] not in ("Failed", "Dismissed"), gw.services.store.get(job_id).message
            return status == ["Succeeded"]

        eventually(succeeded, 180, "the deployed process's WPS 2.0 job to succeed", every=0.5)
        job = gw.services.store.get(job_id)
        assert sacct_settled(job.scheduler_job_id or "", "User", "alice") == "alice"
        result = _wps(gw, "dora", kvp + "GetResult")
        href = result.xpath("//wps:Output/wps:Reference/@xlink:href", namespaces=WPS)[0]
        served = gw.client.get("/" + href.split("://", 1)[1].split("/", 1)[1], headers=gw.h("dora"))
        assert served.status_code == 200 and served.mimetype == "text/plain"
        assert served.get_data(as_text=True).split()[0] == "5"

        # WPS 1.0: synchronous, the file given inline, the output returned raw
        execute_1 = (
            '<wps:Execute xmlns:wps="http://www.opengis.net/wps/1.0.0" '
            'xmlns:ows="http://www.opengis.net/ows/1.1" service="WPS" version="1.0.0">'
            "<ows:Identifier>wc-wps</ows:Identifier><wps:DataInputs><wps:Input>"
            "<ows:Identifier>text</ows:Identifier><wps:Data>"
            '<wps:ComplexData mimeType="text/plain">a b c d e f g</wps:ComplexData>'
            "</wps:Data></wps:Input></wps:DataInputs><wps:ResponseForm><wps:RawDataOutput>"
            "<ows:Identifier>counts</ows:Identifier></wps:RawDataOutput></wps:ResponseForm>"
            "</wps:Execute>"
        )
        raw = gw.client.post(
            "/wps", data=execute_1, headers=gw.h("bob", **{"Content-Type": "text/xml"})
        )
        assert raw.status_code == 200, raw.data
        assert raw.get_data(as_text=True).split()[0] == "7"
    finally:
        assert gw.client.delete("/processes/wc-wps", headers=gw.h("dora")).status_code == 204


def test_a_container_package_no_site_can_run_is_refused(gw: Gateway) -> None:
    """No site of this gateway declares a container runtime: a required container is a 400."""
    docker = "requirements:\n  DockerRequirement: {dockerPull: 'debian:stable-slim'}"
    text = (DATA / "wordcount.cwl").read_text().replace("requirements:", docker, 1)
    resp = gw.deploy("dora", text.replace("id: wordcount", "id: wc-docker"))
    assert resp.status_code == 400, resp.get_json()
    assert "no site of this gateway declares a container runtime" in resp.get_json()["detail"]
    assert gw.client.get("/processes/wc-docker").status_code == 404
