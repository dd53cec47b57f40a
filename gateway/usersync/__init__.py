"""User synchronisation: Keycloak users/groups -> Slurm associations, unix accounts, mappings.

``hpcgw users sync [--dry-run]`` and the admin endpoint both call
:func:`sync_users`. A run reads the configured groups' members from Keycloak
(:mod:`.source`), the current state (mapping table, sacctmgr, unix users),
computes a :class:`~.plan.Plan` and -- unless it is a dry run -- applies it step
by step, writing one ``usersync_audit`` row per step. A failed step stops that
user's remaining steps (their mapping is not recorded, so the next run retries
them) but not the other users. Runs are serialised by a named lease.

Errors: :class:`SyncError` when the run cannot start (directory unreachable or
misconfigured, sacctmgr unreadable, another run in progress, too many
disables without ``force``). Step failures are reported, not raised.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.identity.identity_map import IdentityStatus, IdentityStore, LoginRule
from gateway.jobs.store import JobStore
from gateway.jobs.tables import usersync_audit
from gateway.settings import IdentityMapSettings, Settings, UserSyncSettings
from gateway.usersync.apply import PlanApplier, StepResult
from gateway.usersync.commands import (
    CommandError,
    CommandRunner,
    SlurmCommands,
    SubprocessRunner,
    UnixHook,
    slurm_arg,
)
from gateway.usersync.plan import (
    ChangeKind,
    CurrentState,
    Plan,
    Planner,
    Step,
    StepKind,
    UserChange,
)
from gateway.usersync.sites import FederatedReport, sync_sites
from gateway.usersync.source import Directory, DirectoryError, KeycloakDirectory

__all__ = ["AuditLog", "Plan", "SyncError", "SyncReport", "UserSync", "sync_users"]

log = logging.getLogger(__name__)
LEASE = "usersync"

#: Output of a command that found the wanted state already there (a concurrent
#: change, or a manual fix): treated as success.
_ALREADY = ("Nothing new added", "Nothing deleted", "already exists")
_USERADD_EXISTS = 9


class SyncError(Exception):
    """The sync cannot run (nothing was changed)."""


@dataclass
class SyncReport:
    run_id: str
    dry_run: bool
    plan: Plan
    results: list[StepResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> list[StepResult]:
        return [r for r in self.results if not r.ok]

    def lines(self) -> list[str]:
        head = "user sync plan (dry run, nothing changed)" if self.dry_run else "user sync"
        out = [f"{head}: {line}" if i == 0 else line for i, line in enumerate(self.plan.lines())]
        if not self.dry_run and not self.plan.empty:
            done = len(self.results) - len(self.failed)
            out.append(f"applied {done} step(s), {len(self.failed)} failed")
            out.extend(f"  FAILED {r.step.describe()}: {r.output}" for r in self.failed)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "plan": self.plan.to_dict(),
            "results": [r.to_dict() for r in self.results],
        }


class AuditLog:
    """The ``usersync_audit`` table."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(
        self,
        run_id: str,
        actor: str,
        action: str,
        outcome: str,
        *,
        sub: str | None = None,
        login: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                usersync_audit.insert().values(
                    at=datetime.now(UTC),
                    run_id=run_id,
                    actor=actor,
                    action=action,
                    outcome=outcome,
                    sub=sub,
                    hpc_login=login,
                    detail=detail,
                )
            )

    def recent(self, limit: int = 50, run_id: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(usersync_audit).order_by(usersync_audit.c.id.desc()).limit(limit)
        if run_id is not None:
            query = query.where(usersync_audit.c.run_id == run_id)
        with self._engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]


class UserSync:
    """One configured sync: directory + Slurm + unix hook + mapping table + audit log."""

    def __init__(
        self,
        *,
        settings: UserSyncSettings,
        identity: IdentityMapSettings,
        engine: Engine,
        directory: Directory,
        runner: CommandRunner | None = None,
        unix: UnixHook | None = None,
    ) -> None:
        for path, account in settings.groups.items():
            slurm_arg(account)
            if not path.startswith("/"):
                raise SyncError(f"usersync.groups: '{path}' must be a group path like /hpc-users")
        self.settings = settings
        self.engine = engine
        self.directory = directory
        self.runner = runner or SubprocessRunner()
        self.slurm = SlurmCommands(settings, self.runner)
        self.unix = unix or UnixHook(settings.unix)
        self.identities = IdentityStore(engine)
        self.store = JobStore(engine)
        self.audit = AuditLog(engine)
        self.planner = Planner(
            rule=LoginRule(identity),
            groups=settings.groups,
            slurm=self.slurm,
            unix=self.unix,
            create_accounts=settings.create_accounts,
            cancel_jobs_on_disable=settings.cancel_jobs_on_disable,
        )

    def current_state(self) -> CurrentState:
        accounts = sorted(set(self.settings.groups.values()))
        try:
            slurm_accounts = self.slurm.accounts()
            associations = self.slurm.associations(accounts)
            defaults = self.slurm.default_accounts()
        except CommandError as exc:
            raise SyncError(f"cannot read Slurm accounting: {exc}") from exc
        return CurrentState(
            identities={i.sub: i for i in self.identities.all()},
            slurm_accounts=frozenset(slurm_accounts),
            associations={k: frozenset(v) for k, v in associations.items()},
            default_accounts=defaults,
            unix_exists=self.unix.exists,
        )

    def plan(self) -> Plan:
        try:
            members = self.directory.members(list(self.settings.groups))
        except DirectoryError as exc:
            raise SyncError(str(exc)) from exc
        return self.planner.plan(members, self.current_state())

    def run(self, *, dry_run: bool = False, actor: str = "cli", force: bool = False) -> SyncReport:
        run_id = str(uuid.uuid4())
        if dry_run:
            return SyncReport(run_id, True, self.plan())
        store = self.store
        if not store.acquire_lease(LEASE, run_id, 3600):
            raise SyncError("another user sync is running; try again later")
        try:
            plan = self.plan()
            disables = plan.count(ChangeKind.DISABLE)
            if disables > self.settings.max_disables and not force:
                raise SyncError(
                    f"the plan disables {disables} users (more than usersync.max_disables="
                    f"{self.settings.max_disables}); check the group configuration, or force it"
                )
            report = SyncReport(run_id, False, plan)
            if not plan.empty:
                self._apply(report, actor)
            self.audit.record(
                run_id,
                actor,
                "sync_run",
                "ok" if report.ok else "failed",
                detail={"summary": plan.summary(), "failed": len(report.failed)},
            )
            return report
        finally:
            store.acquire_lease(LEASE, run_id, 0)  # expire now: releases the lease

    # -- applying ----------------------------------------------------------------------

    def _apply(self, report: SyncReport, actor: str) -> None:
        """Apply the plan (associations in batches: :mod:`.apply`), auditing every step."""

        def done(change: UserChange | None, result: StepResult) -> None:
            report.results.append(result)
            sub, kind = (change.sub, change.kind.value) if change is not None else (None, "")
            self._audit(report.run_id, actor, sub, result, kind)

        PlanApplier(self.slurm, self._execute, self._save, done).apply(report.plan)

    def _execute(self, step: Step, username: str) -> StepResult:
        try:
            done = self.runner.run(step.argv, self.settings.command_timeout_seconds)
        except CommandError as exc:
            return StepResult(step, username, False, str(exc))
        ok = done.returncode == 0 or any(marker in done.output for marker in _ALREADY)
        if step.kind is StepKind.CREATE_UNIX and done.returncode == _USERADD_EXISTS:
            ok = True
        return StepResult(step, username, ok, done.output)

    def _save(self, change: UserChange) -> StepResult:
        step = change.steps[-1]
        status = (
            IdentityStatus.DISABLED
            if change.kind is ChangeKind.DISABLE
            else (IdentityStatus.ACTIVE)
        )
        try:
            self.identities.save(change.sub, change.username, change.login, status, change.accounts)
        except (ValueError, sa.exc.SQLAlchemyError) as exc:
            return StepResult(step, change.username, False, str(exc))
        return StepResult(step, change.username, True, f"{change.login}: {status.value}")

    def _audit(
        self, run_id: str, actor: str, sub: str | None, result: StepResult, change: str = ""
    ) -> None:
        detail = {
            "change": change,
            "account": result.step.account,
            "command": result.step.describe(),
            "output": result.output[-1000:],
        }
        self.audit.record(
            run_id,
            actor,
            result.step.kind.value,
            "ok" if result.ok else "failed",
            sub=sub,
            login=result.step.login,
            detail=detail,
        )


def sync_users(
    settings: Settings,
    engine: Engine,
    *,
    dry_run: bool = False,
    actor: str = "cli",
    force: bool = False,
    directory: Directory | None = None,
    runner: CommandRunner | None = None,
) -> SyncReport | FederatedReport:
    """Run the user sync as configured (the CLI and the admin endpoint call this).

    With ``usersync.sites`` every site is synced in turn (:mod:`.sites`); a site
    that cannot be read is reported and the others carry on.
    """
    source = directory or KeycloakDirectory(settings.usersync.keycloak)

    def run_one(
        site: str, sync_settings: UserSyncSettings, site_runner: CommandRunner | None
    ) -> SyncReport:
        sync = UserSync(
            settings=sync_settings,
            identity=settings.auth.identity,
            engine=engine,
            directory=source,
            runner=runner or site_runner,
        )
        return sync.run(dry_run=dry_run, actor=f"{actor}:{site}", force=force)

    if settings.usersync.sites:
        return sync_sites(settings.usersync, run_one, dry_run=dry_run, error=SyncError)
    return run_one("-", settings.usersync, runner)
