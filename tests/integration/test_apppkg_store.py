"""The deployed-process store on SQLite and on the dev PostgreSQL server.

Two gateway instances share one database: a process deployed through one is
seen by the other at once; versions stay readable for the jobs that recorded
them after a replace and an undeploy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import db
from gateway.apppkg.body import parse_body
from gateway.apppkg.cwl import package_definition
from gateway.apppkg.store import AlreadyDeployed, DeployedStore, NotDeployed
from gateway.settings_apppkg import AppPkgSettings
from processes.registry import ProcessRegistry
from tests.integration.test_doctor_postgres import schema_url

__all__ = ["schema_url"]

TOOL = (Path(__file__).resolve().parent.parent / "apppkg_data" / "wordcount.cwl").read_text()


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.integration),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite, or a fresh PostgreSQL schema (test_doctor_postgres' ``schema_url``)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/hpcgw.db"
    return str(request.getfixturevalue("schema_url"))


def _definition(text: str):
    body = parse_body(text.encode(), "application/cwl+yaml", 256 * 1024)
    return package_definition(body, "", AppPkgSettings())


def test_two_instances_share_processes_and_versions(url: str) -> None:
    db.upgrade(url)
    one, two = db.make_engine(url, 2), db.make_engine(url, 2)
    try:
        a, b = DeployedStore(one), DeployedStore(two)
        registry_b = ProcessRegistry.builtin().with_deployed(b)
        v1 = _definition(TOOL)
        a.deploy(v1, "sub-dora", "dora")
        assert "wordcount" in registry_b and registry_b.get("wordcount").digest == v1.digest
        with pytest.raises(AlreadyDeployed):
            b.deploy(v1, "sub-erin", "erin")
        v2 = _definition(TOOL.replace("[wc, -w]", "[wc, -l]"))
        b.replace(v2, "sub-dora")
        assert a.current("wordcount").digest == v2.digest  # type: ignore[union-attr]
        assert registry_b.for_job("wordcount", v1.run_version).digest == v1.digest
        a.undeploy("wordcount")
        assert "wordcount" not in registry_b and b.all() == []
        assert b.pinned("wordcount", v2.run_version).digest == v2.digest  # type: ignore[union-attr]
        with pytest.raises(NotDeployed):
            b.undeploy("wordcount")
        with pytest.raises(NotDeployed):
            b.replace(v2, "sub-dora")
        # deployed again after an undeploy: the same package version is reused
        b.deploy(v1, "sub-erin", "erin")
        assert a.deployment("wordcount").owner_name == "erin"  # type: ignore[union-attr]
    finally:
        one.dispose()
        two.dispose()
