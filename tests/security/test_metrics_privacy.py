"""Issue 14.5: what one user ran and spent is not public.

``/metrics`` is public by default (scrapers have no OIDC token); the public
answer carries the usage totals summed over users -- no ``user`` label. The
scrape token, or an administrator when ``/metrics`` is not public, gets the
per-user series, as ``/accounting/usage`` gives an admin everyone's usage.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from gateway.app import build_services, create_app
from gateway.settings import Settings
from tests.accounting_support import HeaderAuth, as_user, metric_samples, metric_sum
from tests.unit.accounting_fixtures import make_job, usage

pytestmark = pytest.mark.unit

TOKEN = "scrape-s3cret"
USAGE_METRICS = (
    "hpcgw_core_hours_total",
    "hpcgw_cpu_seconds_total",
    "hpcgw_cost_total",
    "hpcgw_quoted_core_hours_total",
    "hpcgw_accounted_jobs_total",
)


def _app(tmp_path: Path, **metrics: Any) -> Iterator[Flask]:
    settings = Settings(
        database={"url": f"sqlite:///{tmp_path}/m.db"},  # type: ignore[arg-type]
        publication={"root": str(tmp_path / "pub")},  # type: ignore[arg-type]
        accounting={"metrics": metrics},  # type: ignore[arg-type]
    )
    services = build_services(settings)
    recorder = services.accounting.recorder("seed")
    end = datetime.now(UTC) - timedelta(hours=1)
    for login, slurm_id, cpus, elapsed in (("alice", "1", 2, 30), ("bob", "2", 1, 45)):
        job = make_job(services.store, login, slurm_id=slurm_id, quote={"core_hours": 0.02})
        recorder.record(job, usage(slurm_id, user=login, cpus=cpus, elapsed=elapsed, end=end))
    yield create_app(settings, services, authenticator=HeaderAuth())
    services.close()


@pytest.fixture
def public_app(tmp_path: Path) -> Iterator[Flask]:
    yield from _app(tmp_path)


@pytest.fixture
def token_app(tmp_path: Path) -> Iterator[Flask]:
    token = tmp_path / "scrape.token"
    token.write_text(TOKEN + "\n", encoding="utf-8")
    yield from _app(tmp_path, bearer_token_file=str(token))


@pytest.fixture
def private_app(tmp_path: Path) -> Iterator[Flask]:
    yield from _app(tmp_path, public=False)


def _users(text: str) -> set[str]:
    return {
        dict(labels)["user"] for (_name, labels) in metric_samples(text) if dict(labels).get("user")
    }


@pytest.mark.parametrize("headers", [{}, as_user("admin"), {"Authorization": "Bearer guess"}])
def test_public_metrics_carry_no_user_label(public_app, headers):
    r = public_app.test_client().get("/metrics", headers=headers)
    assert r.status_code == 200
    text = r.get_data(as_text=True)
    assert _users(text) == set()
    assert 'user="' not in text and "alice" not in text and "bob" not in text
    samples = metric_samples(text)
    assert metric_sum(samples, "hpcgw_cpu_seconds_total") == 105  # the totals are all there
    for name in USAGE_METRICS:
        assert any(n == name for n, _ in samples), name
    assert r.headers["Cache-Control"] == "no-store"


def test_the_scrape_token_gets_per_user_labels(token_app):
    client = token_app.test_client()
    assert client.get("/metrics").status_code == 401
    r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200
    samples = metric_samples(r.get_data(as_text=True))
    assert _users(r.get_data(as_text=True)) == {"alice", "bob"}
    assert metric_sum(samples, "hpcgw_cpu_seconds_total", user="alice") == 60


def test_behind_authentication_only_an_admin_gets_per_user_labels(private_app):
    client = private_app.test_client()
    assert client.get("/metrics").status_code == 401
    alice = client.get("/metrics", headers=as_user("alice"))
    assert alice.status_code == 200 and _users(alice.get_data(as_text=True)) == set()
    admin = client.get("/metrics", headers=as_user("admin"))
    assert _users(admin.get_data(as_text=True)) == {"alice", "bob"}
