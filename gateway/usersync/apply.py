"""Applying a user-sync plan: per-user steps, with Slurm associations added in batches.

A plan is per user (what ``--dry-run`` prints), but one ``sacctmgr add user``
costs about as much for one login as for a hundred (~0.7 s here: slurmdbd
round trips), so a first sync of 2,000 users would spend half an hour on them.
The plan is therefore applied in three passes that keep each user's order:

1. each user's leading unix steps (create or enable the account);
2. the associations to add, ONE ``sacctmgr add user name=a,b,... account=X``
   per account (at most :data:`BATCH` logins each) for the users whose first
   pass succeeded -- a user's first account becomes their default, as it would
   one by one (accounts go in sorted order);
3. each user's remaining steps in plan order (default account, cancellations,
   removals, unix lock), then the mapping row.

A user with a failed step gets no later step and no mapping row, so the next
run plans them again; everyone else is applied. Every step is audited per
user, with the command that really ran (the batch's, for an association).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from gateway.usersync.commands import SlurmCommands
from gateway.usersync.plan import Plan, Step, StepKind, UserChange

log = logging.getLogger(__name__)

#: Logins per ``sacctmgr add user`` (keeps the command line a few kilobytes).
BATCH = 200
_LEADING = (StepKind.CREATE_UNIX, StepKind.ENABLE_UNIX)


@dataclass(frozen=True)
class StepResult:
    """What one step did for one user (a batch's result is recorded for each of its users;
    account steps, which belong to nobody, name the user ``-``)."""

    step: Step
    username: str
    ok: bool
    output: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.step.kind.value,
            "username": self.username,
            "hpc_login": self.step.login,
            "account": self.step.account,
            "command": self.step.describe(),
            "ok": self.ok,
            "output": self.output,
        }


@dataclass
class PlanApplier:
    """Applies ``plan``; ``run`` executes one step for a user, ``save`` writes a change's
    mapping, and ``done`` receives each result (for the report and the audit log)."""

    slurm: SlurmCommands
    run: Callable[[Step, str], StepResult]
    save: Callable[[UserChange], StepResult]
    done: Callable[[UserChange | None, StepResult], None]
    failed: set[str] = field(default_factory=set)

    def apply(self, plan: Plan) -> None:
        for step in plan.account_steps:
            self.done(None, self.run(step, "-"))
        for change in plan.changes:
            for step in change.steps:
                if step.kind not in _LEADING or not self._step(change, step):
                    break
        self._associations(plan.changes)
        for change in plan.changes:
            if change.sub in self.failed:
                continue
            for step in change.steps:
                if step.kind in _LEADING or step.kind is StepKind.ADD_ASSOCIATION:
                    continue
                if not self._step(change, step):
                    break

    def _step(self, change: UserChange, step: Step) -> bool:
        if step.kind is StepKind.SAVE_MAPPING:
            result = self.save(change)
        else:
            result = self.run(step, change.username)
        self._record(change, result)
        return result.ok

    def _record(self, change: UserChange, result: StepResult) -> None:
        if not result.ok:
            self.failed.add(change.sub)
            log.warning(
                "user sync: %s failed for %s; will retry next run",
                result.step.kind.value,
                change.username,
            )
        self.done(change, result)

    def _associations(self, changes: tuple[UserChange, ...]) -> None:
        """One ``sacctmgr add user`` per account (and :data:`BATCH` logins)."""
        wanted: dict[str, list[tuple[UserChange, Step]]] = defaultdict(list)
        for change in changes:
            if change.sub in self.failed:
                continue
            for step in change.steps:
                if step.kind is StepKind.ADD_ASSOCIATION and step.account is not None:
                    wanted[step.account].append((change, step))
        for account in sorted(wanted):
            pairs = wanted[account]
            for start in range(0, len(pairs), BATCH):
                chunk = pairs[start : start + BATCH]
                live = [(c, s) for c, s in chunk if c.sub not in self.failed]
                if live:
                    self._batch(account, live)

    def _batch(self, account: str, chunk: list[tuple[UserChange, Step]]) -> None:
        argv = self.slurm.add_associations([c.login for c, _ in chunk], account)
        ran = self.run(replace(chunk[0][1], login=None, argv=argv), "-")
        for change, step in chunk:
            mine = replace(ran, step=replace(step, argv=argv), username=change.username)
            self._record(change, mine)
