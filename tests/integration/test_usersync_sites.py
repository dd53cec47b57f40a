"""User sync to every site: each cluster's own slurmdbd, its own group -> account mapping.

The real Keycloak's group ``/gep-sites`` (made here) holds ``grace`` (HPC login
``gep_grace``). ``usersync.sites`` maps the group to account ``gep_site_a`` on
hpcgw (Slurm 22.05) and ``gep_site_b`` on mesocentre (Slurm 24.11, its own
``sacctmgr`` and ``SLURM_CONF``), with a third site whose ``sacctmgr`` does not
exist between them: it is reported, and the sites after it are synced all the
same. Each cluster's own ``sacctmgr`` checks the result. Unix accounts are not
created (hook off). Everything is removed afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import db
from gateway.settings import Settings
from gateway.usersync import sync_users
from gateway.usersync.sites import FederatedReport
from tests.clusters import HPCGW, MESOCENTRE, DevCluster
from tests.conftest import make_settings
from tests.identity_fixtures import (
    Keycloak,
    delete_group,
    delete_users,
    fresh_group,
    fresh_user,
    keycloak,
    usersync_config,
)
from tests.integration.adapters import require_cluster

pytestmark = [pytest.mark.slurm, pytest.mark.needs_root("creates Slurm users on both clusters")]

__all__ = ["keycloak"]

GROUP, LOGIN = "/gep-sites", "gep_grace"
ACCOUNTS = {HPCGW: "gep_site_a", MESOCENTRE: "gep_site_b"}


def _cleanup() -> None:
    for cluster, account in ACCOUNTS.items():
        cluster.run("sacctmgr", "-i", "delete", "user", "where", f"name={LOGIN}", check=False)
        cluster.run("sacctmgr", "-i", "delete", "account", f"name={account}", check=False)


def _accounts_of(cluster: DevCluster, login: str) -> set[str]:
    out = cluster.run(
        "sacctmgr", "-nP", "show", "association", "where", f"users={login}", "format=account"
    ).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


@pytest.fixture
def realm(cluster: str, keycloak: Keycloak) -> Iterator[Keycloak]:
    """Group /gep-sites with grace in the real realm; removed afterwards."""
    require_cluster(MESOCENTRE)
    fresh_group(keycloak, GROUP)
    fresh_user(keycloak, "grace", roles=("hpc-user",), groups=(GROUP,))
    _cleanup()
    yield keycloak
    delete_users(keycloak, "grace")
    delete_group(keycloak, GROUP)
    _cleanup()


@pytest.fixture
def settings(realm: Keycloak, tmp_path: Path) -> Settings:
    sites = {
        "hpcgw": {"groups": {GROUP: ACCOUNTS[HPCGW]}},
        "broken": {"sacctmgr": "/nonexistent/sacctmgr"},
        "mesocentre": {
            "sacctmgr": f"{MESOCENTRE.bin_dir}/sacctmgr",
            "scancel": f"{MESOCENTRE.bin_dir}/scancel",
            "slurm_conf": MESOCENTRE.slurm_conf,
            "groups": {GROUP: ACCOUNTS[MESOCENTRE]},
        },
    }
    sync = usersync_config(
        realm,
        groups={GROUP: "unused"},
        unix={"enabled": False},
        sites=sites,
    )
    s = make_settings(
        tmp_path, usersync=sync, auth={"identity": {"rule": "gep_{preferred_username}"}}
    )
    db.upgrade(s.database.url)
    return s


def test_each_site_gets_its_own_account_and_a_down_site_does_not_stop_the_others(
    settings: Settings,
) -> None:
    engine = db.make_engine(settings.database.url)
    plan = sync_users(settings, engine, dry_run=True)
    assert isinstance(plan, FederatedReport)
    lines = plan.lines()

    def planned(site: str, account: str) -> bool:
        wanted = f"add user name={LOGIN} account={account}"
        return any(line.startswith(f"[{site}]") and wanted in line for line in lines)

    assert planned("hpcgw", "gep_site_a") and planned("mesocentre", "gep_site_b"), lines
    assert any(line.startswith("[broken] NOT SYNCED: cannot read Slurm") for line in lines)
    assert _accounts_of(HPCGW, LOGIN) == set()  # a dry run changes nothing

    report = sync_users(settings, engine)
    assert isinstance(report, FederatedReport)
    assert not report.ok  # one site could not be synced: the run says so
    assert set(report.errors) == {"broken"}
    assert report.reports["hpcgw"].ok and report.reports["mesocentre"].ok
    assert _accounts_of(HPCGW, LOGIN) == {"gep_site_a"}
    assert _accounts_of(MESOCENTRE, LOGIN) == {"gep_site_b"}
    assert report.to_dict()["sites"]["broken"]["ok"] is False
