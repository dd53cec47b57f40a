"""The SSH transport's :class:`~hpc_adapters.base.SchedulerAdapter`: Slurm's CLI on a login node.

``submit``/``cancel`` and workspace files run *as the user* (their own SSH
certificate or key); ``statuses``/``usages``/``find_by_name``/``check`` as the
site's service login, which needs a login shell on the login node and must be
able to see every user's jobs (the default without ``PrivateData``; with it,
make the service login a Slurm operator).

Per monitoring cycle: ONE ``squeue -j <all active ids>``, plus ONE ``sacct``
for the ids the controller no longer knows. Usage of many jobs: one ``sacct``.
Errors follow :mod:`hpc_adapters.errors` (transport in :mod:`.transport`,
Slurm's refusals in :mod:`.commands`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from hpc_adapters.base import HpcIdentity, JobSpec, JobStatus, SiteLoad, Usage, WorkspaceFiles
from hpc_adapters.errors import AuthenticationError, InvalidJobError
from hpc_adapters.slurm.dialects import AccountingRecord, valid_job_id
from hpc_adapters.slurm.statuses import merge_by_name, merge_statuses, merge_usages, valid_ids
from hpc_adapters.ssh.commands import CancelOutcome, Probe, Sbatch, Scancel, Squeue
from hpc_adapters.ssh.credentials import checked_login
from hpc_adapters.ssh.load import Associations, QueueLoad
from hpc_adapters.ssh.sacct import Sacct
from hpc_adapters.ssh.sftp import SftpWorkspace
from hpc_adapters.ssh.transport import SshPool

log = logging.getLogger(__name__)

DEFAULT_ENVIRONMENT = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


class SshAdapter:
    """A :class:`~hpc_adapters.base.SchedulerAdapter` over an :class:`SshPool`.

    Pass a pool built with a fake ``client_factory`` (or a pool double) to swap
    the wire in tests; the command objects and parsers are the same.
    """

    def __init__(
        self,
        site: str,
        pool: SshPool,
        service_user: str,
        workspace_root: str,
        *,
        base_environment: Mapping[str, str] | None = None,
        dir_mode: int = 0o750,
        file_mode: int = 0o640,
    ) -> None:
        self.site = site
        self.pool = pool
        self.service_user = checked_login(service_user)
        self.workspace_root = workspace_root
        self.base_environment = dict(base_environment or DEFAULT_ENVIRONMENT)
        self.dir_mode = dir_mode
        self.file_mode = file_mode

    # ---------------------------------------------------------- contract ----

    def submit(self, spec: JobSpec, identity: HpcIdentity) -> str:
        """``sbatch`` as ``identity``; JobRejectedError for what Slurm refuses."""
        environment = dict(self.base_environment)
        environment.setdefault("HOME", spec.workdir)
        environment.update(spec.environment)
        command = Sbatch(spec, environment)
        return command.parse(self.pool.run(checked_login(identity.login), command))

    def statuses(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """One ``squeue``; ids slurmctld no longer knows -> one ``sacct``."""
        wanted = valid_ids(job_ids)
        if not wanted:
            return {}
        squeue = Squeue(wanted)
        live = squeue.parse(self.pool.run(self.service_user, squeue))
        return merge_statuses(wanted, live, self._accounting)

    def find_by_name(self, name: str) -> list[JobStatus]:
        """Jobs slurmctld knows (pending, running or recently ended) named ``name``."""
        squeue = Squeue(name=name)
        return squeue.parse(self.pool.run(self.service_user, squeue))

    def find_by_names(self, names: Sequence[str], since: datetime) -> dict[str, list[JobStatus]]:
        """One ``squeue -n``; names it lacks -> one ``sacct --name`` (since ``since``)."""

        def live(wanted: list[str]) -> list[JobStatus]:
            squeue = Squeue(names=wanted)
            return squeue.parse(self.pool.run(self.service_user, squeue))

        def accounting(missing: list[str]) -> list[JobStatus]:
            sacct = Sacct(names=missing, since=since)
            return [r.status for r in sacct.parse(self.pool.run(self.service_user, sacct))]

        return merge_by_name(names, live, accounting)

    def cancel(self, job_id: str, identity: HpcIdentity) -> None:
        """``scancel`` as ``identity``; an ended job is a no-op, an unknown id InvalidJobError."""
        if not valid_job_id(job_id):
            raise InvalidJobError(f"not a Slurm job id: {job_id!r}")
        command = Scancel(job_id)
        outcome = command.parse(self.pool.run(checked_login(identity.login), command))
        if outcome is CancelOutcome.DENIED:
            raise AuthenticationError(f"Slurm refused to let {identity.login!r} cancel {job_id}")
        if outcome is CancelOutcome.NOT_IN_CONTROLLER:
            if any(r.status.job_id == job_id for r in self._accounting([job_id])):
                log.info("cancel of job %s: already ended and purged; nothing to do", job_id)
                return
            raise InvalidJobError(f"Slurm does not know job {job_id}")

    def usages(self, job_ids: Iterable[str]) -> dict[str, Usage]:
        """Accounting of many jobs in one ``sacct`` (job and step rows, for MaxRSS)."""
        wanted = valid_ids(job_ids)
        if not wanted:
            return {}
        sacct = Sacct(wanted, steps=True)
        records = sacct.parse(self.pool.run(self.service_user, sacct))
        return merge_usages(wanted, records)

    def load(self) -> SiteLoad:
        """Every partition's CPUs and queue: one ``sinfo && squeue`` line."""
        command = QueueLoad()
        return command.parse(self.pool.run(self.service_user, command))

    def associations(self) -> dict[str, frozenset[str]]:
        """Every user's accounts: one ``sacctmgr show associations``."""
        command = Associations()
        return command.parse(self.pool.run(self.service_user, command))

    def files(self, identity: HpcIdentity) -> WorkspaceFiles:
        """SFTP workspace operations logged in as ``identity`` (files are theirs)."""
        return SftpWorkspace(
            self.pool,
            checked_login(identity.login),
            self.workspace_root,
            dir_mode=self.dir_mode,
            file_mode=self.file_mode,
        )

    def check(self) -> dict[str, str]:
        """``sinfo --version`` + ``scontrol ping`` as the service login, with timings."""
        facts = {
            "site": self.site,
            "transport": "ssh",
            "address": self.pool.address,
            "service_user": self.service_user,
        }
        connects_before = self.pool.stats.connects
        started = time.monotonic()
        probe = Probe()
        facts.update(probe.parse(self.pool.run(self.service_user, probe)))
        facts["probe_ms"] = f"{(time.monotonic() - started) * 1000:.1f}"
        facts["rtt_ms"] = facts["probe_ms"]
        if self.pool.stats.connects > connects_before:
            facts["connect_ms"] = f"{self.pool.stats.last_connect_seconds * 1000:.1f}"
        transport = self.pool.transport_of(self.service_user)
        if transport is not None:
            facts["server_version"] = transport.remote_version
            key = transport.get_remote_server_key()
            facts["host_key"] = f"{key.get_name()} {key.fingerprint}"
        facts.update(self.pool.credentials.describe())
        facts["known_hosts_file"] = self.pool.known_hosts_file
        facts["max_sessions"] = str(self.pool.max_sessions)
        facts["connections_made"] = str(self.pool.stats.connects)
        return facts

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> SshAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------- helpers ----

    def _accounting(self, job_ids: Sequence[str]) -> list[AccountingRecord]:
        sacct = Sacct(job_ids)
        return sacct.parse(self.pool.run(self.service_user, sacct))
