"""The abuse suite's fixtures: the real Flask app in-process, its real job store.

No identity provider and no cluster: ``auth.mode: none`` (every request is
NoAuth's user ``alice``) unless a test builds its own app; jobs reach final
states through the job store's own transitions, as the finaliser would.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.app import build_services, create_app
from gateway.jobs.records import Job, JobUpdate, NewJob, Owner
from gateway.jobs.states import JobState
from gateway.services import Services
from gateway.settings import Settings

BASE = "http://gw.example:5000"
ALICE = Owner("dev-user", "alice", "alice")  # NoAuth's default user
EXECUTE = "/processes/echo/execution"
ASYNC = {"Prefer": "respond-async"}
MAX_BODY = 1_048_576


def security_settings(tmp_path: Path, **overrides: Any) -> Settings:
    data: dict[str, Any] = {
        "database": {"url": f"sqlite:///{tmp_path}/x.db"},
        "server": {"base_url": BASE, "sync_timeout_seconds": 0.2, "max_body_bytes": MAX_BODY},
        "publication": {"root": str(tmp_path / "pub")},
        # references are checked but never probed over the network
        "workflow": {"egress": {"probe_references": False}},
    }
    data.update(overrides)
    return Settings(**data)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    svc = build_services(security_settings(tmp_path))
    yield svc
    svc.close()


@pytest.fixture
def app(services: Services) -> Flask:
    application = create_app(services.settings, services)
    application.testing = True
    return application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def accepted_job(services: Services, inputs: dict[str, Any]) -> Job:
    """An echo job of alice's, as just accepted."""
    new = NewJob(
        id=str(uuid.uuid4()),
        process_id="echo",
        process_version="1.0.0",
        owner=ALICE,
        site="dev",
        inputs=inputs,
    )
    return services.store.create(new)


def finished_job(services: Services, inputs: dict[str, Any], results: dict[str, Any]) -> Job:
    """A successful echo job of alice's with ``results`` (what the finaliser stores)."""
    job = accepted_job(services, inputs)
    assert services.store.transition(
        job.id, JobState.SUCCESSFUL, JobUpdate(results=results, progress=100)
    )
    return services.store.get(job.id)


def assert_problem(response: Any, status: int, *words: str) -> dict[str, Any]:
    """An OGC exception document with ``status`` whose detail names every word."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/problem+json", response.mimetype
    doc = response.get_json()
    assert set(doc) >= {"type", "title", "status", "detail"}, doc
    assert doc["status"] == status
    assert "Traceback" not in response.get_data(as_text=True)
    for word in words:
        assert word in doc["detail"], (word, doc["detail"])
    return doc


def job_count(services: Services) -> int:
    return services.store.count()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The fuzz run's request count and statuses (``make fuzz`` reports them)."""
    module = sys.modules.get("tests.security.test_openapi_fuzz")
    line = module.summary() if module is not None else None
    if line:
        terminalreporter.write_line(line)
