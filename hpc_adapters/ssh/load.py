"""The two monitoring commands routing needs over SSH: the site's load and its associations.

``QueueLoad`` runs ``sinfo`` (CPUs per partition, ``%C`` = allocated/idle/other/total,
the default partition marked ``*`` by ``%P``)
and ``squeue`` (every pending and running job: partitions, CPUs, time limit,
time left) in ONE command line; ``Associations`` one ``sacctmgr show
associations``. Both run as the site's service login; see
:mod:`hpc_adapters.slurm.load` for what the load means.
"""

from __future__ import annotations

from hpc_adapters.base import SiteLoad
from hpc_adapters.slurm.load import (
    QueuedJob,
    limit_seconds,
    site_load,
    slurm_duration,
    split_partitions,
)
from hpc_adapters.slurm.states import parse_state
from hpc_adapters.ssh.commands import CommandResult, check_ran

_SEPARATOR = "--hpcgw-queue--"


class QueueLoad:
    """``sinfo`` + ``squeue`` of every pending/running job, one remote command."""

    verb = "squeue"
    idempotent = True

    def line(self) -> str:
        return (
            "sinfo -h -o '%P|%C' && echo " + _SEPARATOR + " && "
            "squeue -h -a -t PENDING,RUNNING -o '%P|%C|%l|%L|%T'"
        )

    def stdin(self) -> bytes | None:
        return None

    def parse(self, result: CommandResult) -> SiteLoad:
        check_ran("squeue", result)
        return parse_queue_load(result.stdout)


def parse_queue_load(text: str) -> SiteLoad:
    """The load from ``sinfo`` rows, the separator, then ``squeue`` rows."""
    head, _, tail = text.partition(_SEPARATOR)
    totals: dict[str, int] = {}
    default: str | None = None
    for row in head.splitlines():
        name, _, cpus = row.strip().partition("|")
        if name.endswith("*"):  # sinfo %P marks the default partition
            name = default = name[:-1]
        fields = cpus.split("/")
        if name and len(fields) == 4 and fields[3].isdigit():
            totals[name] = totals.get(name, 0) + int(fields[3])
    jobs: list[QueuedJob] = []
    for row in tail.splitlines():
        fields = row.strip().split("|")
        if len(fields) != 5 or not fields[1].isdigit():
            continue
        partitions, cpus, limit, left, state = fields
        limit_s = slurm_duration(limit)
        jobs.append(
            QueuedJob(
                partitions=split_partitions(partitions),
                state=parse_state(state),
                cpus=int(cpus),
                time_limit_seconds=limit_seconds(None if limit_s is None else limit_s // 60),
                remaining_seconds=slurm_duration(left),
            )
        )
    return site_load(totals, jobs, default)


class Associations:
    """``sacctmgr show associations``: every user's accounts at the site."""

    verb = "sacctmgr"
    idempotent = True

    def line(self) -> str:
        return "sacctmgr -n -P show associations format=user,account"

    def stdin(self) -> bytes | None:
        return None

    def parse(self, result: CommandResult) -> dict[str, frozenset[str]]:
        check_ran("sacctmgr", result)
        found: dict[str, set[str]] = {}
        for row in result.stdout.splitlines():
            user, _, account = row.strip().partition("|")
            if user and account:
                found.setdefault(user, set()).add(account)
        return {user: frozenset(accounts) for user, accounts in found.items()}
