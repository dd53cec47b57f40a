"""The commands the user sync runs: sacctmgr/scancel verbs and the unix-account site hook.

Every command is an argv list run without a shell (``shell=False``), and every
value put into it has passed a strict name check first
(:data:`gateway.identity.identity_map.SAFE_LOGIN`,
:data:`~gateway.identity.identity_map.SLURM_NAME`),
so no portal-controlled text can add sacctmgr ``key=value`` pairs, options or
shell syntax. :class:`CommandRunner` is the seam tests replace.
"""

from __future__ import annotations

import logging
import os
import pwd
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.identity.identity_map import SAFE_LOGIN, SLURM_NAME
from gateway.settings import UnixHookSettings, UserSyncSettings

log = logging.getLogger(__name__)

Argv = tuple[str, ...]


class CommandError(Exception):
    """A command could not run or failed (its argv and output tail are in the message)."""


@dataclass(frozen=True)
class CommandResult:
    argv: Argv
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        text = (self.stdout + "\n" + self.stderr).strip()
        return text[-2000:]


class CommandRunner(Protocol):
    def run(self, argv: Argv, timeout: float) -> CommandResult: ...


class SubprocessRunner:
    """Runs argv lists with :func:`subprocess.run` (never through a shell); ``env``
    adds variables (e.g. one site's ``SLURM_CONF``) to the process environment."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = {**os.environ, **env} if env else None

    def run(self, argv: Argv, timeout: float) -> CommandResult:
        log.info("running %s", shlex.join(argv))
        try:
            done = subprocess.run(
                list(argv),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env=self.env,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CommandError(f"{shlex.join(argv)}: {exc}") from exc
        return CommandResult(argv, done.returncode, done.stdout, done.stderr)


def login_arg(login: str) -> str:
    if not SAFE_LOGIN.fullmatch(login):
        raise ValueError(f"unsafe HPC login {login!r}")
    return login


def slurm_arg(name: str) -> str:
    if not SLURM_NAME.fullmatch(name):
        raise ValueError(f"unsafe Slurm name {name!r}")
    return name


class SlurmCommands:
    """sacctmgr / scancel argv builders and the readers of current Slurm state."""

    def __init__(self, settings: UserSyncSettings, runner: CommandRunner) -> None:
        self._s = settings
        self._runner = runner
        self._cluster = slurm_arg(settings.cluster) if settings.cluster else None
        self._parent = slurm_arg(settings.account_parent)

    def _sacctmgr(self, *args: str) -> Argv:
        return (self._s.sacctmgr, "--immediate", *args)

    def _where_cluster(self) -> tuple[str, ...]:
        return (f"cluster={self._cluster}",) if self._cluster else ()

    # -- changes ----------------------------------------------------------------

    def add_account(self, account: str) -> Argv:
        return self._sacctmgr(
            "add",
            "account",
            f"name={slurm_arg(account)}",
            f"parent={self._parent}",
            "description=hpcgw-managed",
            "organization=hpcgw",
            *self._where_cluster(),
        )

    def add_association(self, login: str, account: str) -> Argv:
        return self._sacctmgr(
            "add",
            "user",
            f"name={login_arg(login)}",
            f"account={slurm_arg(account)}",
            *self._where_cluster(),
        )

    def add_associations(self, logins: Sequence[str], account: str) -> Argv:
        """One ``sacctmgr add user`` for many logins (slurmdbd takes them in one go)."""
        if not logins:
            raise ValueError("add_associations needs at least one login")
        return self._sacctmgr(
            "add",
            "user",
            f"name={','.join(login_arg(login) for login in logins)}",
            f"account={slurm_arg(account)}",
            *self._where_cluster(),
        )

    def remove_association(self, login: str, account: str) -> Argv:
        return self._sacctmgr(
            "delete",
            "user",
            "where",
            f"name={login_arg(login)}",
            f"account={slurm_arg(account)}",
            *self._where_cluster(),
        )

    def set_default_account(self, login: str, account: str) -> Argv:
        return self._sacctmgr(
            "modify",
            "user",
            "where",
            f"name={login_arg(login)}",
            *self._where_cluster(),
            "set",
            f"defaultaccount={slurm_arg(account)}",
        )

    def cancel_jobs(self, login: str, account: str) -> Argv:
        cluster = (f"--clusters={self._cluster}",) if self._cluster else ()
        return (
            self._s.scancel,
            f"--user={login_arg(login)}",
            f"--account={slurm_arg(account)}",
            *cluster,
        )

    # -- reads ------------------------------------------------------------------

    def _query(self, *args: str) -> list[list[str]]:
        argv = (self._s.sacctmgr, "--noheader", "--parsable2", "show", *args)
        result = self._runner.run(argv, self._s.command_timeout_seconds)
        if result.returncode != 0:
            raise CommandError(f"{shlex.join(argv)} failed: {result.output}")
        return [line.split("|") for line in result.stdout.splitlines() if line.strip()]

    def accounts(self) -> set[str]:
        return {row[0] for row in self._query("account", "format=account") if row[0]}

    def associations(self, accounts: Sequence[str]) -> dict[str, set[str]]:
        """login -> accounts, for user associations in ``accounts`` (on our cluster)."""
        if not accounts:
            return {}
        names = ",".join(slurm_arg(a) for a in sorted(accounts))
        rows = self._query(
            "association",
            "where",
            f"accounts={names}",
            *self._where_cluster(),
            "format=user,account",
        )
        found: dict[str, set[str]] = {}
        for row in rows:
            if len(row) >= 2 and row[0]:
                found.setdefault(row[0], set()).add(row[1])
        return found

    def default_accounts(self) -> dict[str, str]:
        rows = self._query("user", "format=user,defaultaccount")
        return {row[0]: row[1] for row in rows if len(row) >= 2 and row[0]}


class UnixHook:
    """Unix accounts through the configured site hook (dev default: useradd/usermod)."""

    def __init__(self, settings: UnixHookSettings) -> None:
        self._s = settings

    @property
    def enabled(self) -> bool:
        return self._s.enabled

    @staticmethod
    def exists(login: str) -> bool:
        try:
            pwd.getpwnam(login)
        except KeyError:
            return False
        return True

    def argv(self, action: str, login: str) -> Argv | None:
        """The hook command for ``action`` (create/disable/enable), or None if unset."""
        template: list[str] = getattr(self._s, action)
        if not self._s.enabled or not template:
            return None
        safe = login_arg(login)
        return tuple(part.replace("{login}", safe) for part in template)
