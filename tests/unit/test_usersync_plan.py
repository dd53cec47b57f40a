"""The user-sync planner: create / update / enable / disable decisions and their exact commands."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.identity.identity_map import HpcIdentity, IdentityStatus, LoginRule, PortalUser
from gateway.settings import IdentityMapSettings, UnixHookSettings, UserSyncSettings
from gateway.usersync.commands import CommandResult, SlurmCommands, UnixHook
from gateway.usersync.plan import ChangeKind, CurrentState, Planner, StepKind

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class NoRunner:
    def run(self, argv: tuple[str, ...], timeout: float) -> CommandResult:
        raise AssertionError("planning must not run commands")


def planner(rule: str = "gep_{preferred_username}", **sync: object) -> Planner:
    settings = UserSyncSettings(groups={"/hpc-users": "gep", "/eo": "eo"}, **sync)  # type: ignore[arg-type]
    return Planner(
        rule=LoginRule(IdentityMapSettings(rule=rule)),
        groups=settings.groups,
        slurm=SlurmCommands(settings, NoRunner()),
        unix=UnixHook(UnixHookSettings()),
    )


def user(name: str, sub: str | None = None, enabled: bool = True) -> PortalUser:
    return PortalUser(sub=sub or f"sub-{name}", username=name, enabled=enabled)


def ident(
    name: str, status: IdentityStatus = IdentityStatus.ACTIVE, accounts=("gep",)
) -> HpcIdentity:  # type: ignore[no-untyped-def]
    return HpcIdentity(f"sub-{name}", name, f"gep_{name}", status, tuple(accounts), NOW, NOW)


def state(
    identities=(), assoc=None, unix=(), accounts=("gep", "eo"), defaults=None
) -> CurrentState:  # type: ignore[no-untyped-def]
    return CurrentState(
        identities={i.sub: i for i in identities},
        slurm_accounts=frozenset(accounts),
        associations={k: frozenset(v) for k, v in (assoc or {}).items()},
        default_accounts=defaults or {},
        unix_exists=lambda login: login in unix,
    )


def kinds(change) -> list[StepKind]:  # type: ignore[no-untyped-def]
    return [s.kind for s in change.steps]


def test_new_member_is_created_with_exact_commands() -> None:
    plan = planner().plan({"/hpc-users": [user("carol")], "/eo": []}, state())
    (change,) = plan.changes
    assert (change.kind, change.login, change.accounts) == (
        ChangeKind.CREATE,
        "gep_carol",
        ("gep",),
    )
    assert kinds(change) == [StepKind.CREATE_UNIX, StepKind.ADD_ASSOCIATION, StepKind.SAVE_MAPPING]
    assert change.steps[0].argv == (
        "useradd",
        "--create-home",
        "--user-group",
        "--shell",
        "/bin/bash",
        "gep_carol",
    )
    assert change.steps[1].argv == (
        "sacctmgr",
        "--immediate",
        "add",
        "user",
        "name=gep_carol",
        "account=gep",
    )


def test_in_sync_user_is_a_no_op() -> None:
    plan = planner().plan(
        {"/hpc-users": [user("carol")], "/eo": []},
        state([ident("carol")], {"gep_carol": {"gep"}}, unix={"gep_carol"}),
    )
    assert plan.empty and plan.summary().startswith("nothing to do")


def test_member_who_left_is_disabled_not_deleted() -> None:
    plan = planner().plan(
        {"/hpc-users": [], "/eo": []},
        state([ident("carol")], {"gep_carol": {"gep"}}, unix={"gep_carol"}),
    )
    (change,) = plan.changes
    assert change.kind is ChangeKind.DISABLE and change.accounts == ()
    assert kinds(change) == [
        StepKind.CANCEL_JOBS,
        StepKind.REMOVE_ASSOCIATION,
        StepKind.DISABLE_UNIX,
        StepKind.SAVE_MAPPING,
    ]
    assert change.steps[1].argv == (
        "sacctmgr",
        "--immediate",
        "delete",
        "user",
        "where",
        "name=gep_carol",
        "account=gep",
    )
    assert all("userdel" not in s.argv for s in change.steps)


def test_portal_disabled_user_is_disabled() -> None:
    plan = planner().plan(
        {"/hpc-users": [user("carol", enabled=False)], "/eo": []},
        state([ident("carol")], {"gep_carol": {"gep"}}, unix={"gep_carol"}),
    )
    assert [c.kind for c in plan.changes] == [ChangeKind.DISABLE]


def test_disabled_user_stays_quiet_then_comes_back() -> None:
    gone = state([ident("carol", IdentityStatus.DISABLED, ())], {}, unix={"gep_carol"})
    assert planner().plan({"/hpc-users": [], "/eo": []}, gone).empty
    plan = planner().plan({"/hpc-users": [user("carol")], "/eo": []}, gone)
    (change,) = plan.changes
    assert change.kind is ChangeKind.ENABLE
    assert kinds(change) == [StepKind.ENABLE_UNIX, StepKind.ADD_ASSOCIATION, StepKind.SAVE_MAPPING]


def test_group_move_adds_first_then_removes() -> None:
    plan = planner().plan(
        {"/hpc-users": [], "/eo": [user("carol")]},
        state(
            [ident("carol")],
            {"gep_carol": {"gep"}},
            unix={"gep_carol"},
            defaults={"gep_carol": "gep"},
        ),
    )
    (change,) = plan.changes
    assert change.kind is ChangeKind.UPDATE and change.accounts == ("eo",)
    assert kinds(change) == [
        StepKind.ADD_ASSOCIATION,
        StepKind.SET_DEFAULT_ACCOUNT,
        StepKind.CANCEL_JOBS,
        StepKind.REMOVE_ASSOCIATION,
        StepKind.SAVE_MAPPING,
    ]


def test_missing_account_is_created_first() -> None:
    plan = planner().plan({"/hpc-users": [user("carol")], "/eo": []}, state(accounts=("gep",)))
    assert [s.argv for s in plan.account_steps] == [
        (
            "sacctmgr",
            "--immediate",
            "add",
            "account",
            "name=eo",
            "parent=root",
            "description=hpcgw-managed",
            "organization=hpcgw",
        )
    ]


@pytest.mark.parametrize(
    "name", ["x,account=root", "carol smith", "carol;id", "--help", "Carol$(id)", "root"]
)
def test_unsafe_names_are_skipped_with_a_warning(name: str) -> None:
    plan = planner(rule="{preferred_username}").plan(
        {"/hpc-users": [user(name)], "/eo": []}, state()
    )
    assert plan.empty and len(plan.warnings) == 1 and "skipped" in plan.warnings[0]


def test_login_owned_by_someone_else_is_a_conflict() -> None:
    plan = planner().plan(
        {"/hpc-users": [user("carol", sub="new-sub")], "/eo": []},
        state([ident("carol")], {"gep_carol": {"gep"}}, unix={"gep_carol"}),
    )
    # the old owner left the group (disable); the newcomer is not given their login
    assert [c.kind for c in plan.changes] == [ChangeKind.DISABLE]
    assert "already belongs" in plan.warnings[0]


def test_two_users_claiming_one_login() -> None:
    plan = planner(rule="gep_{email_local}").plan(
        {
            "/hpc-users": [
                PortalUser("s1", "a", email="x@a.org"),
                PortalUser("s2", "b", email="x@b.org"),
            ],
            "/eo": [],
        },
        state(),
    )
    assert len(plan.changes) == 1 and "claimed twice" in plan.warnings[0]


def test_logins_never_change_silently() -> None:
    plan = planner(rule="hpc_{preferred_username}").plan(
        {"/hpc-users": [user("carol")], "/eo": []},
        state([ident("carol")], {"gep_carol": {"gep"}}, unix={"gep_carol"}),
    )
    assert plan.empty and "stays mapped to 'gep_carol'" in plan.warnings[0]


def test_cluster_is_named_when_configured() -> None:
    settings = UserSyncSettings(cluster="hpcgw")
    argv = SlurmCommands(settings, NoRunner()).add_association("gep_carol", "gep")
    assert argv[-1] == "cluster=hpcgw"
    with pytest.raises(ValueError):
        SlurmCommands(settings, NoRunner()).add_association("gep_carol", "gep,x=y")
