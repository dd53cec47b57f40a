"""Computing the user-sync plan: desired state (portal) vs current state (DB, Slurm, unix).

The plan is pure data: every step already carries the exact argv it will run,
so ``--dry-run`` prints precisely what a real run would do. Rules:

* a portal user in a configured group (and enabled) is *desired*, with one
  Slurm association per group's account;
* a desired user without a mapping is **created** (unix account via the hook if
  missing, associations, mapping row), a disabled one is **enabled** again, an
  active one whose accounts or name changed is **updated**;
* a mapped, active user who is no longer desired is **disabled**, never
  deleted: their jobs in the managed accounts are cancelled (optional), their
  associations removed (so Slurm refuses their submissions), the unix account
  locked through the hook, and the mapping row kept as ``disabled``;
* Slurm users the sync never mapped are left alone;
* a login, once mapped, never changes; conflicts and invalid logins become
  warnings, not changes, so a second run with nothing new is a no-op.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gateway.identity.identity_map import HpcIdentity, InvalidLogin, LoginRule, PortalUser
from gateway.usersync.commands import Argv, SlurmCommands, UnixHook


class StepKind(StrEnum):
    CREATE_ACCOUNT = "create_account"
    CREATE_UNIX = "create_unix_user"
    ENABLE_UNIX = "enable_unix_user"
    DISABLE_UNIX = "disable_unix_user"
    ADD_ASSOCIATION = "add_association"
    SET_DEFAULT_ACCOUNT = "set_default_account"
    CANCEL_JOBS = "cancel_jobs"
    REMOVE_ASSOCIATION = "remove_association"
    SAVE_MAPPING = "save_mapping"


class ChangeKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    ENABLE = "enable"
    DISABLE = "disable"


@dataclass(frozen=True)
class Step:
    kind: StepKind
    login: str | None = None
    account: str | None = None
    #: The command to run; empty for SAVE_MAPPING (a database write).
    argv: Argv = ()

    def describe(self) -> str:
        if self.argv:
            return shlex.join(self.argv)
        return f"record mapping in the gateway database ({self.login})"


@dataclass(frozen=True)
class UserChange:
    kind: ChangeKind
    sub: str
    username: str
    login: str
    #: Slurm accounts the user has after the change (empty when disabled).
    accounts: tuple[str, ...]
    steps: tuple[Step, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "sub": self.sub,
            "username": self.username,
            "hpc_login": self.login,
            "accounts": list(self.accounts),
            "steps": [s.describe() for s in self.steps],
        }


@dataclass(frozen=True)
class Plan:
    account_steps: tuple[Step, ...] = ()
    changes: tuple[UserChange, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.account_steps and not self.changes

    def count(self, kind: ChangeKind) -> int:
        return sum(1 for c in self.changes if c.kind is kind)

    def summary(self) -> str:
        if self.empty:
            return "nothing to do: the cluster matches the portal"
        parts = [f"{self.count(k)} to {k.value}" for k in ChangeKind if self.count(k)]
        if self.account_steps:
            parts.insert(0, f"{len(self.account_steps)} Slurm account(s) to create")
        return ", ".join(parts)

    def lines(self) -> list[str]:
        """Human-readable plan, one step per line."""
        out = [self.summary()]
        for step in self.account_steps:
            out.append(f"  + account {step.account}: {step.describe()}")
        marks = {
            ChangeKind.CREATE: "+",
            ChangeKind.ENABLE: "+",
            ChangeKind.UPDATE: "~",
            ChangeKind.DISABLE: "-",
        }
        for change in self.changes:
            accounts = ",".join(change.accounts) or "-"
            out.append(
                f"  {marks[change.kind]} {change.kind.value} {change.username} -> "
                f"{change.login} (accounts: {accounts})"
            )
            out.extend(f"      {step.describe()}" for step in change.steps)
        out.extend(f"  ! {w}" for w in self.warnings)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary(),
            "accounts": [s.account for s in self.account_steps],
            "changes": [c.to_dict() for c in self.changes],
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class CurrentState:
    """What exists now: mappings (by sub), Slurm accounts/associations, unix users."""

    identities: Mapping[str, HpcIdentity]
    slurm_accounts: frozenset[str]
    #: login -> accounts, restricted to the managed accounts.
    associations: Mapping[str, frozenset[str]]
    default_accounts: Mapping[str, str] = field(default_factory=dict)
    unix_exists: Callable[[str], bool] = UnixHook.exists


@dataclass
class Planner:
    """Builds a :class:`Plan` from the portal's group members and the current state."""

    rule: LoginRule
    groups: Mapping[str, str]
    slurm: SlurmCommands
    unix: UnixHook
    create_accounts: bool = True
    cancel_jobs_on_disable: bool = True

    def plan(self, members: Mapping[str, Iterable[PortalUser]], state: CurrentState) -> Plan:
        warnings: list[str] = []
        desired = self._desired(members)
        account_steps = self._account_steps(state, warnings)
        by_login = {i.hpc_login: i for i in state.identities.values()}
        claimed: dict[str, str] = {}
        changes: list[UserChange] = []
        for sub in sorted(desired, key=lambda s: desired[s][0].username):
            user, accounts = desired[sub]
            login = self._login(user, state.identities.get(sub), by_login, claimed, warnings)
            if login is None:
                continue
            change = self._desired_change(user, login, accounts, state)
            if change is not None:
                changes.append(change)
        for identity in sorted(state.identities.values(), key=lambda i: i.hpc_login):
            if identity.sub not in desired:
                change = self._disable_change(identity, state)
                if change is not None:
                    changes.append(change)
        return Plan(tuple(account_steps), tuple(changes), tuple(warnings))

    # -- desired state ---------------------------------------------------------------

    def _desired(
        self, members: Mapping[str, Iterable[PortalUser]]
    ) -> dict[str, tuple[PortalUser, frozenset[str]]]:
        found: dict[str, tuple[PortalUser, set[str]]] = {}
        for path, users in members.items():
            account = self.groups[path]
            for user in users:
                if user.enabled:
                    found.setdefault(user.sub, (user, set()))[1].add(account)
        return {sub: (user, frozenset(accts)) for sub, (user, accts) in found.items()}

    def _account_steps(self, state: CurrentState, warnings: list[str]) -> list[Step]:
        steps = []
        for account in sorted(set(self.groups.values()) - state.slurm_accounts):
            if self.create_accounts:
                steps.append(
                    Step(
                        StepKind.CREATE_ACCOUNT,
                        account=account,
                        argv=self.slurm.add_account(account),
                    )
                )
            else:
                warnings.append(f"Slurm account '{account}' does not exist (create_accounts off)")
        return steps

    def _login(
        self,
        user: PortalUser,
        identity: HpcIdentity | None,
        by_login: Mapping[str, HpcIdentity],
        claimed: dict[str, str],
        warnings: list[str],
    ) -> str | None:
        try:
            wanted = self.rule.login_for(user)
        except InvalidLogin as exc:
            if identity is None:
                warnings.append(f"skipped {user.username}: {exc}")
                return None
            wanted = identity.hpc_login
        if identity is not None:
            if wanted != identity.hpc_login:
                warnings.append(
                    f"{user.username} stays mapped to '{identity.hpc_login}' (the rule now "
                    f"gives '{wanted}'; logins never change automatically)"
                )
            return identity.hpc_login
        owner = by_login.get(wanted)
        if owner is not None and owner.sub != user.sub:
            warnings.append(
                f"skipped {user.username}: HPC login '{wanted}' already belongs to "
                f"portal user '{owner.username}'"
            )
            return None
        if claimed.setdefault(wanted, user.sub) != user.sub:
            warnings.append(f"skipped {user.username}: HPC login '{wanted}' is claimed twice")
            return None
        return wanted

    # -- changes ---------------------------------------------------------------------

    def _desired_change(
        self, user: PortalUser, login: str, accounts: frozenset[str], state: CurrentState
    ) -> UserChange | None:
        identity = state.identities.get(user.sub)
        current = state.associations.get(login, frozenset())
        steps: list[Step] = []
        unix_exists = state.unix_exists(login)
        if not unix_exists and (argv := self.unix.argv("create", login)):
            steps.append(Step(StepKind.CREATE_UNIX, login, argv=argv))
        elif (
            identity is not None
            and not identity.active
            and (argv := self.unix.argv("enable", login))
        ):
            steps.append(Step(StepKind.ENABLE_UNIX, login, argv=argv))
        for account in sorted(accounts - current):
            steps.append(
                Step(
                    StepKind.ADD_ASSOCIATION,
                    login,
                    account,
                    self.slurm.add_association(login, account),
                )
            )
        steps.extend(
            self._removals(
                login, current - accounts, accounts, state, cancel=self.cancel_jobs_on_disable
            )
        )
        if identity is None:
            kind = ChangeKind.CREATE
        elif not identity.active:
            kind = ChangeKind.ENABLE
        elif steps or identity.username != user.username or set(identity.accounts) != accounts:
            kind = ChangeKind.UPDATE
        else:
            return None
        steps.append(Step(StepKind.SAVE_MAPPING, login))
        return UserChange(
            kind, user.sub, user.username, login, tuple(sorted(accounts)), tuple(steps)
        )

    def _disable_change(self, identity: HpcIdentity, state: CurrentState) -> UserChange | None:
        login = identity.hpc_login
        current = state.associations.get(login, frozenset())
        if not identity.active and not current:
            return None
        steps = self._removals(
            login, current, frozenset(), state, cancel=self.cancel_jobs_on_disable
        )
        if (
            identity.active
            and state.unix_exists(login)
            and (argv := self.unix.argv("disable", login))
        ):
            steps.append(Step(StepKind.DISABLE_UNIX, login, argv=argv))
        steps.append(Step(StepKind.SAVE_MAPPING, login))
        return UserChange(
            ChangeKind.DISABLE, identity.sub, identity.username, login, (), tuple(steps)
        )

    def _removals(
        self,
        login: str,
        remove: frozenset[str],
        keep: frozenset[str],
        state: CurrentState,
        *,
        cancel: bool,
    ) -> list[Step]:
        steps: list[Step] = []
        if remove and keep and state.default_accounts.get(login) in remove:
            new_default = sorted(keep)[0]
            steps.append(
                Step(
                    StepKind.SET_DEFAULT_ACCOUNT,
                    login,
                    new_default,
                    self.slurm.set_default_account(login, new_default),
                )
            )
        for account in sorted(remove):
            if cancel:
                steps.append(
                    Step(
                        StepKind.CANCEL_JOBS, login, account, self.slurm.cancel_jobs(login, account)
                    )
                )
            steps.append(
                Step(
                    StepKind.REMOVE_ASSOCIATION,
                    login,
                    account,
                    self.slurm.remove_association(login, account),
                )
            )
        return steps
