"""The user sync across sites: one run per site in ``usersync.sites``, each reported.

Each site has its own accounting (its slurmdbd, reached with its own
``sacctmgr`` and ``SLURM_CONF``) and its own group -> account mapping; the
portal users, their HPC login and the unix hook are the same everywhere. A
site whose accounting cannot be read (down, misconfigured) is reported with
why, and the others are synced all the same: ``ok`` is false, the exit status
of ``hpcgw users sync`` 1. ``--dry-run`` shows each site's plan.

The mapping table keeps one record per portal user (its login and the
accounts of the site synced last); routing reads each site's own
associations (:mod:`gateway.routing.readings`), not that record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.settings import SiteSyncSettings, UserSyncSettings
from gateway.usersync.commands import CommandRunner, SubprocessRunner

log = logging.getLogger(__name__)


class SiteRun(Protocol):
    """What one site's sync returned (a :class:`~gateway.usersync.SyncReport`)."""

    @property
    def ok(self) -> bool: ...

    def lines(self) -> list[str]: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass
class FederatedReport:
    """The sync of every site: each site's report, or why it could not run."""

    dry_run: bool
    reports: dict[str, SiteRun] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors and all(r.ok for r in self.reports.values())

    def lines(self) -> list[str]:
        out: list[str] = []
        for site, report in self.reports.items():
            out.extend(f"[{site}] {line}" for line in report.lines())
        out.extend(f"[{site}] NOT SYNCED: {error}" for site, error in self.errors.items())
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "ok": self.ok,
            "sites": {
                **{site: r.to_dict() for site, r in self.reports.items()},
                **{site: {"ok": False, "error": e} for site, e in self.errors.items()},
            },
        }


def site_settings(base: UserSyncSettings, site: SiteSyncSettings) -> UserSyncSettings:
    """The sync settings of one site: its commands, cluster and groups over ``base``."""
    return base.model_copy(
        update={
            "sacctmgr": site.sacctmgr,
            "scancel": site.scancel,
            "cluster": site.cluster,
            "groups": site.groups if site.groups is not None else base.groups,
            "sites": {},
        }
    )


def site_runner(site: SiteSyncSettings) -> CommandRunner:
    return SubprocessRunner({"SLURM_CONF": site.slurm_conf} if site.slurm_conf else None)


def sync_sites(
    base: UserSyncSettings,
    run_one: Callable[[str, UserSyncSettings, CommandRunner], SiteRun],
    *,
    dry_run: bool,
    error: type[Exception],
) -> FederatedReport:
    """Run ``run_one(site, settings, runner)`` for every site; ``error`` (SyncError) is
    recorded for that site and the next one is synced."""
    report = FederatedReport(dry_run=dry_run)
    for name, site in base.sites.items():
        try:
            report.reports[name] = run_one(name, site_settings(base, site), site_runner(site))
        except error as exc:
            log.error("user sync of site %s did not run: %s", name, exc)
            report.errors[name] = str(exc)
    return report
