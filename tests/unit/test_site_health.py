"""Site health as people and Prometheus see it: /status/sites, the gauges, stale probes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from gateway.app import create_app
from gateway.routing.health import HealthStore, HealthView, SiteHealth
from gateway.services import Services

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, object]:
    rest = {"url": "http://127.0.0.1:9", "jwt_key_file": str(tmp_path / "none.key")}
    return {
        "sites": {
            "hpcgw": {"slurmrest": rest},
            "mesocentre": {"slurmrest": rest, "partitions": ["short"]},
            "old": {"slurmrest": rest, "enabled": False},
        },
        "default_site": "hpcgw",
    }


@pytest.fixture
def client(services: Services) -> FlaskClient:
    return create_app(services.settings, services).test_client()


def _probe(
    services: Services, site: str, up: bool, at: datetime, detail: str | None = None
) -> None:
    HealthStore(services.engine).record(SiteHealth(site, up, at, at, 0.012, detail))


def test_status_sites_shows_each_sites_last_probe_and_whether_it_takes_jobs(
    services: Services, client: FlaskClient
) -> None:
    now = datetime.now(UTC)
    _probe(services, "hpcgw", True, now)
    _probe(services, "mesocentre", True, now - timedelta(seconds=20))
    _probe(services, "mesocentre", False, now, "slurmctld not answering")
    sites = {s["site"]: s for s in client.get("/status/sites").get_json()["sites"]}
    assert sites["hpcgw"]["takesJobs"] is True and sites["hpcgw"]["health"]["up"] is True
    meso = sites["mesocentre"]
    assert meso["takesJobs"] is False
    assert meso["health"]["detail"] == "slurmctld not answering"
    assert meso["health"]["since"] == now.isoformat()  # changed state with this probe
    assert meso["partitions"] == ["short"]
    assert sites["old"]["takesJobs"] is False and sites["old"]["health"] is None
    page = client.get("/status/sites?f=html").get_data(as_text=True)
    assert '<tr id="site-mesocentre" data-up="False">' in page
    assert "slurmctld not answering" in page and "12.0 ms" in page
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'hpcgw_site_up{site="mesocentre"} 0.0' in metrics
    assert 'hpcgw_site_up{site="hpcgw"} 1.0' in metrics
    assert 'hpcgw_site_probe_seconds{site="hpcgw"} 0.012' in metrics


def test_a_stale_probe_says_nothing_about_the_site(services: Services) -> None:
    _probe(services, "mesocentre", False, NOW, "refused")
    store = HealthStore(services.engine)
    fresh = HealthView(store, probe_seconds=15, now=lambda: NOW + timedelta(seconds=30))
    late = HealthView(store, probe_seconds=15, now=lambda: NOW + timedelta(seconds=46))
    assert fresh.down("mesocentre") is not None
    assert late.down("mesocentre") is None  # no worker probing is not an outage
    assert fresh.down("hpcgw") is None  # never probed
