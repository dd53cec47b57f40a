"""``hpcgw db upgrade`` from the previous release's schema keeps and serves the old jobs.

A scratch SQLite file is migrated to the revision before head (the previous
release's schema, whatever head is now), a finished job is written the way that
schema allows (only its columns, through a reflected table), then the real CLI
upgrades it and the real app (``create_app``) serves the job, its results and
the job list.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from alembic.script import ScriptDirectory

from gateway import db
from gateway.app import create_app
from gateway.settings import load_settings
from tests.conftest import REPO

pytestmark = pytest.mark.integration

OWNER = {"sub": "old-release-user", "username": "alice", "hpc_login": "alice"}


def _previous_revision(url: str) -> str:
    script = ScriptDirectory.from_config(db.alembic_config(url))
    heads = script.get_heads()
    assert len(heads) == 1, f"one head expected, got {heads}"
    previous = script.get_revision(heads[0]).down_revision
    assert isinstance(previous, str), "head has no single previous revision"
    return previous


def _insert_old_job(url: str) -> str:
    """A successful echo job, written with the columns of the old schema only."""
    engine = sa.create_engine(url)
    jobs = sa.Table("jobs", sa.MetaData(), autoload_with=engine)
    now = datetime.now(UTC).replace(tzinfo=None)  # the reflected column is a plain DATETIME
    job_id = str(uuid.uuid4())
    row = {
        "id": job_id,
        "process_id": "echo",
        "process_version": "1.0.0",
        "state": "successful",
        "owner_sub": OWNER["sub"],
        "owner_name": OWNER["username"],
        "hpc_login": OWNER["hpc_login"],
        "site": "dev",
        "interface": "ogcapi",
        "inputs": {"string_input": "from the old release"},
        "response": "document",
        "created": now - timedelta(minutes=3),
        "updated": now - timedelta(minutes=1),
        "started": now - timedelta(minutes=2),
        "finished": now - timedelta(minutes=1),
        "progress": 100,
        "message": "Job finished",
        "results": {"string_output": "from the old release"},
        "attempts": 0,
        "cancel_pending": False,
        "cleanup_pending": False,
    }
    with engine.begin() as conn:
        conn.execute(jobs.insert().values(**{k: v for k, v in row.items() if k in jobs.c}))
    engine.dispose()
    return job_id


def test_upgrade_from_the_previous_release_serves_its_jobs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hpcgw.db"
    previous = _previous_revision(url)
    db.upgrade(url, previous)
    job_id = _insert_old_job(url)
    config = tmp_path / "gateway.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": {"url": url, "auto_upgrade": False},  # only the CLI migrates
                "auth": {"mode": "none", "default_user": OWNER},
                "publication": {"root": str(tmp_path / "published")},
            }
        )
    )

    upgrade = subprocess.run(
        [str(Path(sys.executable).with_name("hpcgw")), "db", "upgrade", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    assert upgrade.returncode == 0, upgrade.stderr
    engine = sa.create_engine(url)
    head = ScriptDirectory.from_config(db.alembic_config(url)).get_current_head()
    assert db.current_revision(engine) == head != previous
    engine.dispose()

    client = create_app(load_settings(config)).test_client()
    status = client.get(f"/jobs/{job_id}")
    assert status.status_code == 200, status.data
    assert status.get_json()["status"] == "successful"
    assert status.get_json()["processID"] == "echo"
    results = client.get(f"/jobs/{job_id}/results")
    assert results.status_code == 200, results.data
    assert results.get_json() == {"string_output": "from the old release"}
    listed = client.get("/jobs").get_json()["jobs"]
    assert [j["jobID"] for j in listed] == [job_id]
