"""User sync at scale against the real Keycloak admin API: 2,000 users in nested groups.

A realm of its own (``gep-scale``, created through the admin API and deleted
afterwards) with ``/hpc/proj-P/team-T`` (5 projects x 4 teams), 2,000 users in
the teams, every 20th disabled, and an ``hpcgw-sync`` service account. The
configured groups are the projects, so every member is found through a
sub-group (nested groups), and the member lists are read page by page.

What runs for real: the directory reads (python-keycloak, paged), the plan
against the real Slurm accounting (``--dry-run``), and the *apply* of all of it
to the real Slurm accounting of the ``hpcgw`` cluster -- associations added
``sacctmgr add user name=a,b,...`` per account, 200 logins a call -- then an
idempotent second run, a moved and a disabled user applied, and everything
removed again. The apply runs with the unix hook off (a centre whose unix
accounts come from LDAP: 2,000 useradd calls would only time this machine's
/etc/passwd); the unix hook is exercised with three users in
``test_usersync.py``.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway import db
from gateway.identity.identity_map import HpcIdentity, IdentityStatus, IdentityStore
from gateway.settings import KeycloakAdminSettings, Settings
from gateway.usersync import SyncReport, UserSync, sync_users
from gateway.usersync.apply import BATCH
from gateway.usersync.plan import ChangeKind, CurrentState, Plan, StepKind
from gateway.usersync.source import KeycloakDirectory
from tests.conftest import make_settings
from tests.identity_fixtures import SYNC_CLIENT, Keycloak, keycloak

pytestmark = pytest.mark.integration

__all__ = ["keycloak"]

REALM = "gep-scale"
PROJECTS, TEAMS, USERS = 5, 4, 2000
GROUPS = {f"/hpc/proj-{p}": f"scale_p{p}" for p in range(PROJECTS)}


def _team(i: int) -> str:
    return f"/hpc/proj-{i % PROJECTS}/team-{(i // PROJECTS) % TEAMS}"


def _delete_realm(kc: Keycloak) -> None:
    admin = kc.admin()
    if any(r["realm"] == REALM for r in admin.get_realms()):
        admin.delete_realm(REALM)


@pytest.fixture(scope="module")
def scale_realm(keycloak: Keycloak, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The scale realm; yields the file holding its sync client's secret."""
    _delete_realm(keycloak)
    secret = secrets.token_urlsafe(24)
    users = [
        {
            "username": f"u{i:04d}",
            "enabled": i % 20 != 0,
            "email": f"u{i:04d}@example.org",
            "firstName": "User",
            "lastName": f"Number{i}",
            "groups": [_team(i)],
        }
        for i in range(USERS)
    ]
    admin = keycloak.admin()
    # one import (like --import-realm): a single transaction, no partial imports
    admin.create_realm(
        {
            "realm": REALM,
            "enabled": True,
            "clients": [
                {
                    "clientId": SYNC_CLIENT,
                    "publicClient": False,
                    "secret": secret,
                    "serviceAccountsEnabled": True,
                    "standardFlowEnabled": False,
                    "directAccessGrantsEnabled": False,
                }
            ],
            "users": [
                *users,
                {
                    "username": f"service-account-{SYNC_CLIENT}",
                    "enabled": True,
                    "serviceAccountClientId": SYNC_CLIENT,
                    "clientRoles": {
                        "realm-management": ["view-users", "query-users", "query-groups"]
                    },
                },
            ],
            "groups": [
                {
                    "name": "hpc",
                    "subGroups": [
                        {
                            "name": f"proj-{p}",
                            "subGroups": [{"name": f"team-{t}"} for t in range(TEAMS)],
                        }
                        for p in range(PROJECTS)
                    ],
                }
            ],
        },
        skip_exists=False,
    )
    secret_file = tmp_path_factory.mktemp("scale") / "sync.secret"
    secret_file.write_text(secret)
    yield secret_file
    _delete_realm(keycloak)


@pytest.fixture
def settings(keycloak: Keycloak, scale_realm: Path, tmp_path: Path) -> Settings:
    s = make_settings(
        tmp_path,
        usersync={
            "keycloak": {
                "server_url": keycloak.url,
                "realm": REALM,
                "client_id": SYNC_CLIENT,
                "client_secret_file": str(scale_realm),
            },
            "groups": GROUPS,
            "max_disables": 10,
        },
        auth={"identity": {"rule": "sc_{preferred_username}"}},
    )
    db.upgrade(s.database.url)
    return s


def _directory(settings: Settings) -> KeycloakDirectory:
    kc: KeycloakAdminSettings = settings.usersync.keycloak
    return KeycloakDirectory(kc)


def test_paged_reads_find_every_member_of_the_nested_groups(settings: Settings) -> None:
    members = _directory(settings).members(list(GROUPS))
    assert {path: len(users) for path, users in members.items()} == {
        path: USERS // PROJECTS for path in GROUPS
    }
    everyone = [u for users in members.values() for u in users]
    assert len({u.sub for u in everyone}) == USERS
    assert sum(not u.enabled for u in everyone) == USERS // 20
    assert {u.username for u in members["/hpc/proj-2"]} == {
        f"u{i:04d}" for i in range(USERS) if i % PROJECTS == 2
    }


def _applied(plan: Plan) -> CurrentState:
    """The state a successful apply of ``plan`` leaves behind."""
    now = datetime.now(UTC)
    identities = {
        c.sub: HpcIdentity(c.sub, c.username, c.login, IdentityStatus.ACTIVE, c.accounts, now, now)
        for c in plan.changes
    }
    return CurrentState(
        identities=identities,
        slurm_accounts=frozenset(GROUPS.values()),
        associations={i.hpc_login: frozenset(i.accounts) for i in identities.values()},
        default_accounts={i.hpc_login: i.accounts[0] for i in identities.values()},
        unix_exists=lambda login: True,
    )


def test_dry_run_plans_every_enabled_user_and_changes_nothing(
    settings: Settings, cluster: str
) -> None:
    engine = db.make_engine(settings.database.url)
    report = sync_users(settings, engine, dry_run=True, actor="test")
    assert report.ok and report.results == []
    assert report.plan.count(ChangeKind.CREATE) == USERS - USERS // 20
    created = {c.login: c.accounts for c in report.plan.changes}
    assert created["sc_u0001"] == ("scale_p1",) and "sc_u0020" not in created  # disabled
    assert IdentityStore(engine).all() == []


def test_second_run_is_empty_then_a_move_and_a_disable_are_the_only_changes(
    settings: Settings, keycloak: Keycloak
) -> None:
    engine = db.make_engine(settings.database.url)
    directory = _directory(settings)
    sync = UserSync(
        settings=settings.usersync,
        identity=settings.auth.identity,
        engine=engine,
        directory=directory,
    )
    first = sync.planner.plan(directory.members(list(GROUPS)), _empty_state())
    assert first.count(ChangeKind.CREATE) == USERS - USERS // 20
    state = _applied(first)
    assert sync.planner.plan(directory.members(list(GROUPS)), state).empty

    admin = keycloak.admin()
    admin.change_current_realm(REALM)
    moved = admin.get_user_id("u0001")  # proj-1/team-0 -> proj-3/team-2
    admin.group_user_remove(moved, admin.get_group_by_path(_team(1))["id"])
    admin.group_user_add(moved, admin.get_group_by_path("/hpc/proj-3/team-2")["id"])
    admin.update_user(admin.get_user_id("u0002"), {"enabled": False})
    after = sync.planner.plan(directory.members(list(GROUPS)), state)
    assert sorted((c.kind, c.login, c.accounts) for c in after.changes) == [
        (ChangeKind.DISABLE, "sc_u0002", ()),
        (ChangeKind.UPDATE, "sc_u0001", ("scale_p3",)),
    ]


def _sacctmgr(*args: str) -> str:
    done = subprocess.run(
        ["sacctmgr", *args], capture_output=True, text=True, check=False, timeout=120
    )
    return done.stdout


def _remove_from_slurm() -> None:
    """Every scale login and account out of the hpcgw cluster's accounting (batched)."""
    logins = [f"sc_u{i:04d}" for i in range(USERS)]
    for start in range(0, USERS, BATCH):
        _sacctmgr("-i", "delete", "user", "name=" + ",".join(logins[start : start + BATCH]))
    _sacctmgr("-i", "delete", "account", "name=" + ",".join(GROUPS.values()))


def _slurm_associations() -> dict[str, set[str]]:
    out = _sacctmgr(
        "-nP", "show", "association", "where", "accounts=" + ",".join(GROUPS.values()),
        "format=user,account",
    )  # fmt: skip
    found: dict[str, set[str]] = {}
    for line in out.splitlines():
        user, _, account = line.partition("|")
        if user:
            found.setdefault(user, set()).add(account)
    return found


def _sync(settings: Settings, engine: sa.Engine) -> SyncReport:
    report = sync_users(settings, engine, actor="test")
    assert isinstance(report, SyncReport)  # one site: no federated report
    return report


@pytest.fixture
def applying(settings: Settings, keycloak: Keycloak, cluster: str) -> Iterator[Settings]:
    """The scale settings, applied for real (no unix hook: logins come from LDAP, so no
    ``scancel --user`` either); Slurm and the moved/disabled users put back afterwards."""
    _remove_from_slurm()
    usersync = settings.usersync.model_copy(update={"cancel_jobs_on_disable": False})
    usersync.unix = usersync.unix.model_copy(update={"enabled": False})
    yield settings.model_copy(update={"usersync": usersync})
    _remove_from_slurm()
    admin = keycloak.admin()
    admin.change_current_realm(REALM)
    moved = str(admin.get_user_id("u0003"))
    admin.group_user_remove(moved, admin.get_group_by_path("/hpc/proj-0/team-0")["id"])
    admin.group_user_add(moved, admin.get_group_by_path(_team(3))["id"])
    admin.update_user(str(admin.get_user_id("u0004")), {"enabled": True})


def test_apply_at_scale_batches_associations_and_a_second_run_does_nothing(
    applying: Settings, keycloak: Keycloak
) -> None:
    engine = db.make_engine(applying.database.url)
    members = _directory(applying).members(list(GROUPS))
    expected: dict[str, set[str]] = {}
    for path, users in members.items():
        for user in users:
            if user.enabled:
                expected.setdefault(f"sc_{user.username}", set()).add(GROUPS[path])
    started = time.monotonic()
    report = _sync(applying, engine)
    seconds = time.monotonic() - started
    print(f"user sync applied {len(expected)} users in {seconds:.1f} s")
    assert report.ok, report.lines()[-10:]
    assert report.plan.count(ChangeKind.CREATE) == len(expected) >= USERS * 9 // 10
    # one sacctmgr per account and BATCH logins, not one per user
    adds = {r.step.argv for r in report.results if r.step.kind is StepKind.ADD_ASSOCIATION}
    per_account: dict[str, int] = {}
    for accounts in expected.values():
        for account in accounts:
            per_account[account] = per_account.get(account, 0) + 1
    assert len(adds) == sum(-(-n // BATCH) for n in per_account.values())
    assert _slurm_associations() == expected
    assert len(IdentityStore(engine).all()) == len(expected)

    again = _sync(applying, engine)
    assert again.plan.empty and again.results == [], again.lines()[:5]

    admin = keycloak.admin()
    admin.change_current_realm(REALM)
    moved = str(admin.get_user_id("u0003"))  # proj-3/team-0 -> proj-0/team-0
    admin.group_user_remove(moved, admin.get_group_by_path(_team(3))["id"])
    admin.group_user_add(moved, admin.get_group_by_path("/hpc/proj-0/team-0")["id"])
    admin.update_user(str(admin.get_user_id("u0004")), {"enabled": False})
    third = _sync(applying, engine)
    assert third.ok, third.lines()
    assert sorted((c.kind, c.login) for c in third.plan.changes) == [
        (ChangeKind.DISABLE, "sc_u0004"),
        (ChangeKind.UPDATE, "sc_u0003"),
    ]
    after = _slurm_associations()
    assert after["sc_u0003"] == {"scale_p0"} and "sc_u0004" not in after
    assert len(after) == len(expected) - 1


def _empty_state() -> CurrentState:
    return CurrentState(
        identities={},
        slurm_accounts=frozenset(),
        associations={},
        unix_exists=lambda login: False,
    )
