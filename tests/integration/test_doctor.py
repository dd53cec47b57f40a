"""``hpcgw doctor`` against the real clusters, the dev identity provider and real files.

A healthy deployment (both dev clusters, OIDC, a migrated database) passes and
is left as it was; a broken one (empty database, unreachable site, publication
folder the service account cannot write) exits 1 naming each problem. The
broken case runs as the unprivileged ``hpcgw`` account when the suite runs as
root (root may write anywhere), as the service would.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.clusters import HPCGW, MESOCENTRE
from tests.conftest import REPO, WORK_ROOT
from tests.identity_fixtures import Keycloak, auth_config, keycloak  # noqa: F401

pytestmark = pytest.mark.slurm

HPCGW_BIN = str(Path(sys.executable).with_name("hpcgw"))
SERVICE_ACCOUNT = "hpcgw"


def _site(url: str, jwt_key: str) -> dict[str, object]:
    return {
        "slurmrest": {"url": url, "jwt_key_file": jwt_key},
        "workspace_root": str(WORK_ROOT),
        "pythonpath": str(REPO),
    }


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder the service account can read (pytest's own tmp is root-only)."""
    folder = Path(tempfile.mkdtemp(prefix="hpcgw-doctor-"))
    folder.chmod(0o755)
    yield folder
    subprocess.run(["rm", "-rf", str(folder)], check=True)


def _doctor(config: Path, *, as_service_account: bool = False) -> subprocess.CompletedProcess[str]:
    prefix = ["runuser", "-u", SERVICE_ACCOUNT, "--"] if as_service_account else []
    return subprocess.run(
        [*prefix, HPCGW_BIN, "doctor", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=config.parent,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_a_healthy_deployment_passes_and_is_left_unchanged(
    cluster: str,
    keycloak: Keycloak,  # noqa: F811
    tmp_path: Path,
) -> None:
    database = tmp_path / "hpcgw.db"
    published = tmp_path / "published"
    published.mkdir()
    config = tmp_path / "gateway.yaml"
    settings = {
        "database": {"url": f"sqlite:///{database}"},
        "auth": auth_config(keycloak),
        "sites": {
            "dev": _site(HPCGW.rest_url, HPCGW.jwt_key),
            "meso": _site(MESOCENTRE.rest_url, MESOCENTRE.jwt_key),
        },
        "default_site": "dev",
        "publication": {"root": str(published)},
    }
    config.write_text(yaml.safe_dump(settings))
    upgrade = subprocess.run(
        [HPCGW_BIN, "db", "upgrade", "--config", str(config)], capture_output=True, text=True
    )
    assert upgrade.returncode == 0, upgrade.stderr
    before = database.read_bytes()

    result = _doctor(config)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for check in ("database", "site dev", "site meso", "oidc", "workspace dev", "publication"):
        assert any(line.startswith("ok") and f" {check} " in line for line in lines), check
    assert "cluster hpcgw" in result.stdout and "cluster mesocentre" in result.stdout
    assert not any(line.startswith("FAIL") for line in lines)
    assert list(published.iterdir()) == []  # its probe file is gone
    assert database.read_bytes() == before


def test_a_broken_deployment_exits_nonzero_naming_each_problem(
    cluster: str, shared_dir: Path
) -> None:
    database = shared_dir / "hpcgw.db"
    sqlite3.connect(database).close()  # a database nobody migrated
    database.chmod(0o644)
    published = shared_dir / "published"
    published.mkdir(mode=0o755)  # root's: the service account cannot write it
    as_service_account = os.geteuid() == 0
    if not as_service_account:
        published.chmod(0o555)
    key = shared_dir / "jwt.key"  # readable: the site fails on its URL, not on the key
    key.write_bytes(os.urandom(32))
    key.chmod(0o644)
    config = shared_dir / "gateway.yaml"
    nowhere = {"url": "http://127.0.0.1:9", "jwt_key_file": str(key)}
    settings = {
        "database": {"url": f"sqlite:///{database}"},
        "sites": {"dev": {"slurmrest": nowhere, "workspace_root": "/"}},
        "publication": {"root": str(published)},
    }
    config.write_text(yaml.safe_dump(settings))
    config.chmod(0o644)

    result = _doctor(config, as_service_account=as_service_account)
    assert result.returncode == 1, result.stdout + result.stderr
    failed = {
        line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("FAIL")
    }
    assert "hpcgw db upgrade" in failed["database"]
    assert "127.0.0.1:9" in failed["site"]
    assert "cannot write" in failed["publication"]
    assert "problem(s) to fix" in result.stdout
    assert sorted(p.name for p in shared_dir.iterdir()) == [
        "gateway.yaml",
        "hpcgw.db",
        "jwt.key",
        "published",
    ]
    assert sqlite3.connect(database).execute("select count(*) from sqlite_master").fetchone() == (
        0,
    )
