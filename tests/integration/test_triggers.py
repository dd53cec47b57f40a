"""Triggers end to end: a local FDSN event feed fires jobs on the real dev cluster.

The feed is :class:`tests.trigger_fixtures.FeedServer` (EMSC and USGS are not
reachable from the test machines); everything else is real: the gateway's
REST resource (over its WSGI app), the database, the worker's poller stage,
and the jobs it submits run in Slurm as the trigger's owner.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from gateway.app import build_services, build_worker, create_app
from gateway.jobs.states import JobState
from gateway.jobs.tables import leases
from gateway.services import Services
from gateway.settings import Settings
from gateway.triggers.tables import triggers as triggers_table
from tests.accounting_support import PRINCIPALS, HeaderAuth, as_user
from tests.conftest import make_settings, sacct_settled
from tests.polling import eventually
from tests.trigger_fixtures import FeedServer, Quake, serving

pytestmark = pytest.mark.slurm

#: geObservatory's rule, on the echo process: strong shallow earthquakes in a region.
REGION = [-30.0, 25.0, 50.0, 72.0]


def rule(feed_url: str, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "title": "Strong shallow earthquakes in the region",
        "process": "echo",
        "source": {"type": "fdsn-event", "url": feed_url, "intervalSeconds": 1},
        "criteria": {"minMagnitude": 5.5, "maxDepthKm": 30, "bbox": REGION},
        "areaHalfWidthDegrees": 0.5,
        "inputs": {
            "bounding_box_input": {"bbox": "{{event.bbox}}"},
            "string_input": "quake {{event.id}} M{{event.magnitude}} at {{event.time}}",
            "number_input": "{{event.depthKm}}",
        },
    }
    doc.update(changes)
    return doc


@pytest.fixture
def feed() -> Iterator[FeedServer]:
    with serving(FeedServer()) as server:
        yield server


def _settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, triggers={"min_interval_seconds": 0, "lease_seconds": 30})


@pytest.fixture
def gateway(cluster: str, tmp_path: Path) -> Iterator[tuple[Services, Flask]]:
    services = build_services(_settings(tmp_path))
    yield services, create_app(services.settings, services, authenticator=HeaderAuth())
    services.close()


def _create(client: FlaskClient, body: dict[str, Any], user: str = "alice") -> dict[str, Any]:
    created = client.post("/triggers", json=body, headers=as_user(user))
    assert created.status_code == 201, created.get_json()
    assert created.headers["Location"].endswith(f"/triggers/{created.get_json()['id']}")
    return created.get_json()


def _run_until_final(services: Services, job_id: str, worker_id: str = "runner") -> Any:
    worker = build_worker(services, worker_id=worker_id)

    def final() -> Any:
        worker.run_once()
        job = services.store.get(job_id)
        return job if job.final else None

    return eventually(final, 120, f"job {job_id} to finish", every=0.3)


def _expire_poller_lease(services: Services) -> None:
    with services.engine.begin() as conn:
        past = datetime.now(UTC) - timedelta(minutes=1)
        conn.execute(leases.update().where(leases.c.name == "trigger-poller").values(until=past))


def _make_due(services: Services, *, forget_validators: bool) -> None:
    values: dict[str, Any] = {"next_poll_at": None}
    if forget_validators:
        values.update(etag=None, last_modified=None)
    with services.engine.begin() as conn:
        conn.execute(triggers_table.update().values(**values))


def test_a_feed_fires_one_job_once_across_workers_and_restarts(
    gateway: tuple[Services, Flask], feed: FeedServer, tmp_path: Path
) -> None:
    services, app = gateway
    client = app.test_client()
    trigger = _create(client, rule(feed.query_url))
    feed.publish(
        Quake("ev-strong", lon=20.5, lat=38.2, depth_km=12.0, mag=6.1),
        Quake("ev-deep", lon=21.0, lat=39.0, depth_km=80.0, mag=6.4),
        Quake("ev-far", lon=140.0, lat=36.0, depth_km=10.0, mag=7.0),
        Quake("ev-small", lon=20.0, lat=38.0, depth_km=5.0, mag=4.2),
    )
    # two workers: the one holding the poller lease polls; the other does nothing
    first, second = build_worker(services, worker_id="w1"), build_worker(services, worker_id="w2")
    first.run_once()
    second.run_once()
    # the lease lapses and the second worker reads the whole feed again: nothing new fires
    _expire_poller_lease(services)
    _make_due(services, forget_validators=True)
    second.run_once()

    doc = client.get(f"/triggers/{trigger['id']}", headers=as_user("alice")).get_json()
    assert [a["eventId"] for a in doc["activations"]] == ["ev-strong"]
    activation = doc["activations"][0]
    assert activation["outcome"] == "submitted"
    assert activation["event"]["magnitude"] == 6.1
    assert doc["lastError"] is None

    # the gateway restarts (new services, same database) and polls again: 304, no new job
    services.close()
    restarted = build_services(_settings(tmp_path))
    try:
        _make_due(restarted, forget_validators=False)
        _expire_poller_lease(restarted)
        build_worker(restarted, worker_id="w3").run_once()
        assert feed.not_modified >= 1
        job = _run_until_final(restarted, activation["jobID"])
        assert job.state is JobState.SUCCESSFUL, job.message
        assert job.owner.hpc_login == "alice"
        assert sacct_settled(job.scheduler_job_id or "", "User", "alice") == "alice"
        assert job.extra["trigger"] == {"id": trigger["id"], "eventId": "ev-strong", "kind": "feed"}
        assert job.results is not None
        assert job.results["bounding_box_output"]["bbox"] == [20.0, 37.7, 21.0, 38.7]
        assert job.results["string_output"].startswith("quake ev-strong M6.1 at 2026-12-07T06:00")
        assert job.results["number_output"] == 12.0
        with restarted.engine.connect() as conn:
            jobs = conn.execute(sa.text("select count(*) from jobs")).scalar_one()
        assert jobs == 1
    finally:
        restarted.close()


def test_manual_activation_runs_once_per_event_id(
    gateway: tuple[Services, Flask], feed: FeedServer
) -> None:
    services, app = gateway
    client = app.test_client()
    manual = rule(feed.query_url, source={"type": "manual"})
    trigger = _create(client, manual)
    url = f"/triggers/{trigger['id']}/activations"
    body = {
        "lon": 13.4,
        "lat": 42.35,
        "time": "2026-12-07T01:32:00Z",
        "eventId": "laquila",
        "magnitude": 6.3,
        "depthKm": 8,
    }
    fired = client.post(url, json=body, headers=as_user("alice"))
    assert fired.status_code == 201, fired.get_json()
    job_id = fired.get_json()["jobID"]
    again = client.post(url, json=body, headers=as_user("alice"))
    assert again.status_code == 200
    assert again.get_json()["jobID"] == job_id
    # the job is alice's ordinary job: listed, visible, and runs as alice
    status = client.get(f"/jobs/{job_id}", headers=as_user("alice")).get_json()
    assert status["trigger"] == {"id": trigger["id"], "eventId": "laquila"}
    related = [x["href"] for x in status["links"] if x["rel"] == "related"]
    assert related and related[0].endswith(f"/triggers/{trigger['id']}")
    assert client.get(f"/jobs/{job_id}", headers=as_user("bob")).status_code == 404
    job = _run_until_final(services, job_id)
    assert job.state is JobState.SUCCESSFUL, job.message
    assert job.results["bounding_box_output"]["bbox"] == pytest.approx([12.9, 41.85, 13.9, 42.85])
    assert sacct_settled(job.scheduler_job_id or "", "User", "alice") == "alice"
    # a bad activation is a 400, not an event
    bad = client.post(url, json={"time": "2026-12-07T01:32:00Z"}, headers=as_user("alice"))
    assert bad.status_code == 400
    assert "area" in bad.get_json()["detail"]


def test_triggers_are_owner_isolated(gateway: tuple[Services, Flask], feed: FeedServer) -> None:
    _, app = gateway
    client = app.test_client()
    trigger = _create(client, rule(feed.query_url, source={"type": "manual"}))
    path = f"/triggers/{trigger['id']}"
    assert client.get(path, headers=as_user("bob")).status_code == 404
    assert client.delete(path, headers=as_user("bob")).status_code == 404
    body = {"lon": 1, "lat": 2, "time": "2026-12-07T00:00:00Z"}
    assert client.post(f"{path}/activations", json=body, headers=as_user("bob")).status_code == 404
    assert client.get("/triggers", headers=as_user("bob")).get_json()["triggers"] == []
    assert [
        t["id"] for t in client.get("/triggers", headers=as_user("admin")).get_json()["triggers"]
    ] == [trigger["id"]]
    html = client.get("/triggers?f=html", headers=as_user("alice"))
    assert html.status_code == 200 and trigger["title"] in html.get_data(as_text=True)
    assert client.get("/triggers").status_code == 401
    disabled = client.put(
        path, json={**rule(feed.query_url), "enabled": False}, headers=as_user("alice")
    )
    assert disabled.status_code == 200 and disabled.get_json()["enabled"] is False
    assert client.delete(path, headers=as_user("alice")).status_code == 204
    assert client.get(path, headers=as_user("alice")).status_code == 404


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"inputs": {"integer_input": "{{event.region}}"}}, "integer_input"),
        ({"inputs": {"string_input": "{{event.nope}}"}}, "unknown placeholder"),
        ({"process": "no-such-process"}, "does not exist"),
        ({"criteria": {"bbox": [10, 10, 0, 0]}}, "bbox"),
        ({"criteria": {"polygon": {"type": "Point", "coordinates": [0, 0]}}}, "Polygon"),
        ({"source": {"type": "fdsn-event", "url": "ftp://x"}}, "source"),
        ({"surprise": 1}, "surprise"),
        ({"site": "elsewhere"}, "elsewhere"),
    ],
)
def test_a_bad_rule_is_refused_when_created(
    gateway: tuple[Services, Flask], feed: FeedServer, change: dict[str, Any], detail: str
) -> None:
    _, app = gateway
    refused = app.test_client().post(
        "/triggers", json=rule(feed.query_url, **change), headers=as_user("alice")
    )
    assert refused.status_code == 400
    assert detail in refused.get_json()["detail"]


def test_a_broken_feed_is_reported_and_does_not_stop_the_others(
    gateway: tuple[Services, Flask], feed: FeedServer
) -> None:
    services, app = gateway
    client = app.test_client()
    broken = _create(client, rule(f"{feed.url}/broken", title="broken"))
    refused = _create(client, rule("http://10.1.2.3/fdsnws/event/1/query", title="not allowed"))
    good = _create(client, rule(feed.query_url, title="good"))
    feed.publish(Quake("ev-1", lon=10.0, lat=45.0, depth_km=10.0, mag=5.9))
    build_worker(services, worker_id="w1").run_once()
    docs = {
        t["title"]: t
        for t in client.get("/triggers", headers=as_user("alice")).get_json()["triggers"]
    }
    assert "not a GeoJSON FeatureCollection" in (
        docs["broken"]["lastError"] or ""
    ) or "not JSON" in (docs["broken"]["lastError"] or "")
    assert docs["not allowed"]["lastError"]
    assert docs["good"]["lastError"] is None
    good_doc = client.get(f"/triggers/{good['id']}", headers=as_user("alice")).get_json()
    assert [a["eventId"] for a in good_doc["activations"]] == ["ev-1"]
    for other in (broken, refused):
        assert (
            client.get(f"/triggers/{other['id']}/activations", headers=as_user("alice")).get_json()[
                "activations"
            ]
            == []
        )


def test_the_cli_manages_and_activates_triggers(
    gateway: tuple[Services, Flask], feed: FeedServer, tmp_path: Path
) -> None:
    import json

    import yaml
    from typer.testing import CliRunner

    from gateway.cli import app as cli
    from gateway.identity.identity_map import IdentityStatus, IdentityStore

    services, _ = gateway
    IdentityStore(services.engine).save("sub-alice", "alice", "alice", IdentityStatus.ACTIVE, [])
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(services.settings.model_dump(mode="json")))
    env = {"HPCGW_CONFIG": str(config)}
    rule_file = tmp_path / "rule.json"
    area_only = {"bounding_box_input": {"bbox": "{{event.bbox}}"}, "string_input": "{{event.time}}"}
    rule_file.write_text(
        json.dumps(rule(feed.query_url, source={"type": "manual"}, inputs=area_only))
    )
    runner = CliRunner()

    def hpcgw(*args: str) -> str:
        result = runner.invoke(cli, ["triggers", *args], env=env)
        assert result.exit_code == 0, result.output
        return result.output

    trigger_id = hpcgw("create", str(rule_file), "--owner", "sub-alice").strip()
    assert "alice  enabled  manual" in hpcgw("list")
    fired = json.loads(
        hpcgw("activate", trigger_id, "--bbox", "10,40,11,41", "--time", "2026-12-07T03:00:00Z",
              "--event-id", "cli-event")
    )  # fmt: skip
    assert fired["outcome"] == "submitted"
    job = services.store.get(fired["jobID"])
    assert job.owner.hpc_login == "alice"
    assert job.inputs["bounding_box_input"] == {"bbox": [10.0, 40.0, 11.0, 41.0]}
    shown = json.loads(hpcgw("show", trigger_id))
    assert [a["eventId"] for a in shown["activations"]] == ["cli-event"]
    hpcgw("disable", trigger_id)
    assert "disabled" in hpcgw("list")
    # refused: an unknown owner, a bad rule (exit status 2 and the reason)
    unknown = runner.invoke(
        cli, ["triggers", "create", str(rule_file), "--owner", "nobody"], env=env
    )
    assert unknown.exit_code == 2 and "not a provisioned" in unknown.output
    rule_file.write_text(json.dumps(rule(feed.query_url, inputs={"integer_input": "x"})))
    bad = runner.invoke(
        cli, ["triggers", "create", str(rule_file), "--owner", "sub-alice"], env=env
    )
    assert bad.exit_code == 2 and "integer_input" in bad.output
    hpcgw("delete", trigger_id)
    assert trigger_id not in hpcgw("list")


def _poll_refused(
    services: Services, client: FlaskClient, trigger: dict[str, Any], user: str
) -> dict[str, Any]:
    """Poll once; the trigger's one activation, refused, with no job created."""
    build_worker(services, worker_id="w1").run_once()
    doc = client.get(f"/triggers/{trigger['id']}", headers=as_user(user)).get_json()
    [activation] = doc["activations"]
    assert activation["outcome"] == "refused"
    assert activation["jobID"] is None
    assert services.store.count() == 0
    return activation


def test_an_owner_whose_account_was_disabled_gets_a_refused_activation(
    gateway: tuple[Services, Flask], feed: FeedServer
) -> None:
    from gateway.identity.identity_map import IdentityStatus, IdentityStore

    services, app = gateway
    client = app.test_client()
    trigger = _create(client, rule(feed.query_url))
    IdentityStore(services.engine).save("sub-alice", "alice", "alice", IdentityStatus.DISABLED, [])
    feed.publish(Quake("ev-2", lon=10.0, lat=45.0, depth_km=10.0, mag=6.0))
    activation = _poll_refused(services, client, trigger, "alice")
    assert "no active HPC account" in activation["reason"]


def test_an_owner_without_budget_gets_a_refused_activation_with_the_reason(
    cluster: str, tmp_path: Path, feed: FeedServer
) -> None:
    from gateway.accounting.budgets import BudgetStore, Scope
    from gateway.accounting.periods import parse_period

    accounting = {"prices": {"*": {"*": 0.10}}}
    settings = make_settings(tmp_path, accounting=accounting, triggers={"min_interval_seconds": 0})
    services = build_services(settings)
    try:
        app = create_app(settings, services, authenticator=HeaderAuth())
        client = app.test_client()
        BudgetStore(services.engine).set(
            Scope.USER, "bob", parse_period("month"), 0.0, actor="test"
        )
        trigger = _create(client, rule(feed.query_url), user="bob")
        feed.publish(Quake("ev-budget", lon=10.0, lat=45.0, depth_km=10.0, mag=6.0))
        activation = _poll_refused(services, client, trigger, "bob")
        assert "monthly budget of user 'bob'" in activation["reason"]
        # the refusal is final for this event: polling again does not retry it
        _make_due(services, forget_validators=True)
        build_worker(services, worker_id="w1").run_once()
        again = client.get(f"/triggers/{trigger['id']}/activations", headers=as_user("bob"))
        assert len(again.get_json()["activations"]) == 1
    finally:
        services.close()


def test_a_stac_search_trigger_fires_on_new_items_over_the_area(
    gateway: tuple[Services, Flask],
) -> None:
    """A new Sentinel-1-like acquisition over the area fires the trigger with its asset's href.

    The STAC API is :class:`tests.trigger_fixtures.StacSearchServer` (the local EO
    mirror serves a static catalog without ``/search``); the job stages the asset
    through the egress guard and runs in Slurm as the owner.
    """
    from tests.trigger_fixtures import StacSearchServer

    services, app = gateway
    client = app.test_client()
    with serving(StacSearchServer()) as stac:
        body = rule(
            f"{stac.url}/search",
            title="New S1 acquisitions over the Aegean",
            source={
                "type": "stac-search",
                "url": f"{stac.url}/search",
                "collections": ["sentinel-1-grd"],
                "asset": "vv",
                "intervalSeconds": 1,
            },
            criteria={"bbox": [20.0, 35.0, 28.0, 41.0], "after": "2026-12-07T00:00:00Z"},
            inputs={
                "mixed_input": {"href": "{{event.assetHref}}"},
                "bounding_box_input": {"bbox": "{{event.bbox}}"},
                "string_input": "{{event.id}}",
            },
        )
        trigger = _create(client, body)
        when = datetime(2026, 12, 7, 16, 30, tzinfo=UTC)
        stac.add_item("sentinel-1-grd", "S1A_NEW", [22.0, 37.0, 24.0, 39.0], when, "vv")
        stac.add_item(
            "sentinel-1-grd", "S1A_OLD", [22.0, 37.0, 24.0, 39.0], when - timedelta(days=3), "vv"
        )
        stac.add_item("sentinel-1-grd", "S1A_FAR", [100.0, 10.0, 102.0, 12.0], when, "vv")
        stac.add_item("sentinel-2-l2a", "S2B_OTHER", [22.0, 37.0, 24.0, 39.0], when, "vv")
        stac.files = {"S1A_NEW.tif": b"vv backscatter\n"}
        build_worker(services, worker_id="w1").run_once()
        _make_due(services, forget_validators=True)
        _expire_poller_lease(services)
        build_worker(services, worker_id="w2").run_once()
        assert stac.searches[0]["collections"] == ["sentinel-1-grd"]
        assert stac.searches[0]["bbox"] == [20.0, 35.0, 28.0, 41.0]
        assert stac.searches[0]["datetime"].startswith("2026-12-07T00:00:00")
        doc = client.get(f"/triggers/{trigger['id']}", headers=as_user("alice")).get_json()
        assert [a["eventId"] for a in doc["activations"]] == ["sentinel-1-grd/S1A_NEW"]
        [activation] = doc["activations"]
        assert activation["kind"] == "stac"
        job = services.store.get(activation["jobID"])
        assert job.inputs["mixed_input"] == {"href": f"{stac.url}/data/S1A_NEW.tif"}
        assert job.inputs["bounding_box_input"] == {"bbox": [22.0, 37.0, 24.0, 39.0]}
        done = _run_until_final(services, job.id)
        assert done.state is JobState.SUCCESSFUL, done.message
        assert done.results["mixed_output"] == "vv backscatter\n"
        assert done.results["string_output"] == "sentinel-1-grd/S1A_NEW"


def test_an_activation_a_dead_worker_left_pending_is_submitted_once(
    gateway: tuple[Services, Flask], feed: FeedServer
) -> None:
    """A worker died after claiming two events: one before creating the job, one after."""
    from gateway.triggers.service import activation_job_id
    from gateway.triggers.tables import trigger_activations

    services, app = gateway
    client = app.test_client()
    trigger = _create(client, rule(feed.query_url, source={"type": "manual"}))
    store = services.triggers.store  # type: ignore[union-attr]
    event = {"id": "ev-x", "time": "2026-12-07T06:00:00+00:00", "bbox": [0.0, 0.0, 1.0, 1.0],
             "lon": 0.5, "lat": 0.5, "depth_km": 10.0, "magnitude": 6.0}  # fmt: skip
    never_submitted = activation_job_id(trigger["id"], "ev-x")
    store.claim_event(trigger["id"], "ev-x", "feed", event, never_submitted)
    submitted = activation_job_id(trigger["id"], "ev-y")
    store.claim_event(trigger["id"], "ev-y", "feed", {**event, "id": "ev-y"}, submitted)
    alice = PRINCIPALS["alice"]
    body = {"inputs": {"string_input": "made before the crash"}}
    services.jobs.submit(alice, "echo", body, job_id=submitted)
    # nothing happens within the grace period (the claiming worker may still be at it)
    build_worker(services, worker_id="w1").run_once()
    assert {a.outcome for a in store.activations(trigger["id"])} == {"pending"}
    with services.engine.begin() as conn:  # ... which has passed
        past = datetime.now(UTC) - timedelta(minutes=10)
        conn.execute(trigger_activations.update().values(updated=past))
    build_worker(services, worker_id="w2").run_once()
    outcomes = {a.event_id: a.outcome for a in store.activations(trigger["id"])}
    assert outcomes == {"ev-x": "submitted", "ev-y": "submitted"}
    assert services.store.get(never_submitted).inputs["string_input"].startswith("quake ev-x M6.0")
    assert services.store.get(submitted).inputs == body["inputs"]  # linked, not made again
    assert services.store.count() == 2
