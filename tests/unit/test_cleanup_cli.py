"""``hpcgw cleanup``: retention of published outputs and the input-cache bound, from the CLI."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gateway.app import build_services
from gateway.cli import app
from gateway.jobs.records import JobUpdate, NewJob, Owner
from gateway.jobs.states import JobState
from gateway.settings import load_settings
from gateway.staging import build_cache
from gateway.staging.base import Validators

pytestmark = pytest.mark.unit


def test_cleanup_applies_retention_and_bounds_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HPCGW_CONFIG", raising=False)
    config = tmp_path / "gateway.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": {"url": f"sqlite:///{tmp_path}/x.db"},
                "publication": {"root": str(tmp_path / "pub")},
                "workflow": {
                    "cache": {"root": str(tmp_path / "cache"), "max_bytes": 1500},
                    "retention": {"published_days": 7},
                },
            }
        )
    )
    settings = load_settings(config)
    services = build_services(settings)
    job = services.store.create(
        NewJob(
            id=str(uuid.uuid4()),
            process_id="echo",
            process_version="1",
            site="dev",
            owner=Owner("s", "alice", "alice"),
            inputs={},
        )
    )
    services.store.transition(job.id, JobState.FAILED, JobUpdate(message="x"))
    folder = services.publication_root / job.id
    folder.mkdir(parents=True)
    (folder / "out.tif").write_bytes(b"x" * 100)
    cache = build_cache(settings.workflow)
    assert cache is not None
    for n in range(3):
        with cache.download_file() as (path, fh):
            fh.write(bytes([n]) * 1000)
            fh.flush()
            cache.commit(f"http://x/{n}", path, f"{n:064x}", 1000, Validators())
        time.sleep(0.01)
    runner = CliRunner()
    kept = runner.invoke(app, ["cleanup", "--config", str(config)])
    assert kept.exit_code == 0, kept.output
    report = json.loads(kept.output)
    assert report["expired_jobs"] == [] and report["cache_objects_evicted"] == 2
    assert folder.exists() and cache.usage() == (1000, 1)
    old = runner.invoke(app, ["cleanup", "--config", str(config), "--older-than-days", "1e-9"])
    assert json.loads(old.output)["expired_jobs"] == [job.id]
    assert not folder.exists()
    assert services.store.get(job.id).extra["publication"]["expired"]
    services.close()
