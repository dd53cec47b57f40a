"""After a fault run: what the gateway says, what each cluster's accounting says, and
whether they agree -- the checks of the fault tests and the chaos benchmark.

* every gateway job the clients were given an id for is in the store and in the
  final state its inputs call for (``exit_code`` 0: ``successful`` with its
  input echoed; else ``failed``) -- otherwise it is *lost* or *wrong*;
* each cluster's accounting (``sacct -a``, every Slurm job named
  ``hpcgw-<gateway job id>``, both clusters) holds exactly one Slurm job per
  gateway job -- more is a *duplicate*, none is *never run*. sacct's time
  window leaves out jobs slurmdbd holds without an eligible time (a job
  cancelled before it was eligible; seen on a loaded machine for jobs that ran),
  so cancelled jobs are also asked for by state, and a job still missing is
  asked for by its recorded Slurm id (``sacct -D -j``): it counts only if that
  id carries its name;
* the gateway's usage records (``accounting_usage``) hold one row per gateway
  job, for that Slurm job, and their CPU-seconds add up to Slurm's
  ``CPUTimeRAW`` of every Slurm job counted above (duplicates included, so
  compute spent twice shows as a difference).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bench.fleet import CLUSTERS
from gateway.accounting.tables import usage as usage_table
from gateway.jobs.tables import jobs as jobs_table

FINAL = ("successful", "failed", "dismissed")


@dataclass(frozen=True)
class Submission:
    """One execution a client asked for: its tag (``string_input``) and expected end."""

    tag: str
    exit_code: int = 0
    pause: float = 0.0

    @property
    def expected(self) -> str:
        return "failed" if self.exit_code else "successful"

    def body(self) -> dict[str, Any]:
        inputs: dict[str, Any] = {"string_input": self.tag}
        if self.exit_code:
            inputs["exit_code"] = self.exit_code
        if self.pause:
            inputs["pause"] = self.pause
        return {"inputs": inputs}


@dataclass(frozen=True)
class SlurmJob:
    cluster: str
    job_id: str
    state: str
    cpu_seconds: int


@dataclass
class Ledger:
    """The figures of one fault run (see the module docstring)."""

    submitted: int = 0
    accepted: int = 0
    in_store: int = 0
    correct: int = 0
    wrong: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    #: gateway job id -> its Slurm jobs, when there are more than one.
    duplicates: dict[str, list[str]] = field(default_factory=dict)
    never_run: list[str] = field(default_factory=list)
    slurm_jobs_by_cluster: dict[str, int] = field(default_factory=dict)
    slurm_core_hours: float = 0.0
    usage_core_hours: float = 0.0
    usage_missing: list[str] = field(default_factory=list)
    usage_mismatched: list[str] = field(default_factory=list)
    #: Jobs whose Slurm job was found at the site and adopted after a kill.
    recovered: int = 0
    #: Slurm jobs the time-window query missed but ``sacct -j`` found by the
    #: recorded id, with the right name ("cluster:id eligible=...").
    found_by_id: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.wrong
            or self.lost
            or self.duplicates
            or self.never_run
            or self.usage_missing
            or self.usage_mismatched
            or self.correct != self.in_store
            or round(self.slurm_core_hours * 3600) != round(self.usage_core_hours * 3600)
        )

    def summary(self) -> dict[str, Any]:
        doc = asdict(self)
        for key in ("wrong", "lost", "never_run", "usage_missing", "usage_mismatched"):
            doc[key] = {"count": len(doc[key]), "first": doc[key][:5]}
        doc["duplicates"] = {
            "count": len(self.duplicates),
            "first": dict(list(self.duplicates.items())[:5]),
        }
        doc["ok"] = self.ok
        return doc


def store_jobs(engine: sa.Engine, ids: set[str]) -> dict[str, Any]:
    """The rows of the given gateway jobs (state, results, Slurm id, message, extra)."""
    j = jobs_table
    cols = (
        j.c.id,
        j.c.state,
        j.c.inputs,
        j.c.results,
        j.c.scheduler_job_id,
        j.c.site,
        j.c.message,
        j.c.extra,
    )
    rows: dict[str, Any] = {}
    wanted = sorted(ids)
    with engine.connect() as conn:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            for row in conn.execute(sa.select(*cols).where(j.c.id.in_(chunk))):
                rows[row.id] = row
    return rows


def unfinished(engine: sa.Engine, ids: set[str]) -> int:
    """How many of ``ids`` are not (yet) in a final state (missing ones included)."""
    rows = store_jobs(engine, ids)
    return sum(1 for i in ids if i not in rows or rows[i].state not in FINAL)


def usage_rows(engine: sa.Engine, ids: set[str]) -> dict[str, Any]:
    u = usage_table
    out: dict[str, Any] = {}
    wanted = sorted(ids)
    with engine.connect() as conn:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            query = sa.select(u.c.job_id, u.c.scheduler_job_id, u.c.cpu_seconds, u.c.core_hours)
            for row in conn.execute(query.where(u.c.job_id.in_(chunk))):
                out[row.job_id] = row
    return out


def wait_usage(engine: sa.Engine, ids: set[str], timeout: float) -> bool:
    """Wait until every job of ``ids`` that has a Slurm job has its usage row."""
    deadline = time.monotonic() + timeout
    while True:
        rows = store_jobs(engine, ids)
        owed = {i for i, r in rows.items() if r.scheduler_job_id}
        if owed <= set(usage_rows(engine, owed)):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(1.0)


def slurm_jobs(since: datetime, names: set[str]) -> dict[str, list[SlurmJob]]:
    """Slurm job name -> every Slurm job of that name in both clusters' accounting.

    Two queries per cluster: the time window (jobs with an eligible time in it),
    and the jobs *cancelled* in it -- a job cancelled before it was ever eligible
    (a second submission cancelled while pending) has none, and only a state
    query lists it.
    """
    start = since.astimezone().strftime("%Y-%m-%dT%H:%M:%S")
    found: dict[str, list[SlurmJob]] = defaultdict(list)
    fields = "JobIDRaw,JobName%80,State,CPUTimeRAW"
    window = ("sacct", "-a", "-X", "-n", "-P", "-S", start, "-E", "now", "-o", fields)
    for cluster in CLUSTERS.values():
        seen: set[str] = set()
        for query in (window, (*window, "-s", "CA")):
            for line in cluster.run(*query).splitlines():
                parts = line.split("|")
                if len(parts) != 4 or parts[1] not in names or parts[0] in seen:
                    continue
                job_id, name, state, cpu = parts
                seen.add(job_id)
                found[name].append(SlurmJob(cluster.name, job_id, state, int(cpu or 0)))
    return found


def by_id(cluster: str, job_ids: list[str]) -> dict[str, tuple[SlurmJob, str, str]]:
    """Slurm job id -> (the job, its name, its eligible time) from ``sacct -D -j``: every
    record of those ids at ``cluster``, whatever the time window (the newest per id)."""
    fields = "JobIDRaw,JobName%80,State,CPUTimeRAW,Eligible"
    found: dict[str, tuple[SlurmJob, str, str]] = {}
    if not job_ids:
        return found
    out = CLUSTERS[cluster].run("sacct", "-D", "-X", "-n", "-P", "-j", ",".join(job_ids),
                                "-o", fields)  # fmt: skip
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) == 5:
            job_id, name, state, cpu, eligible = parts
            found[job_id] = (SlurmJob(cluster, job_id, state, int(cpu or 0)), name, eligible)
    return found


#: The name slurmdbd gives a job whose record it created from a step or an end before
#: the job's own start record arrived (slurmctld's accounting queue behind, under
#: load); the real name replaces it moments later.
PLACEHOLDER_NAME = "allocation"


def _settled_by_id(
    cluster: str, job_ids: list[str], timeout: float = 120.0
) -> dict[str, tuple[SlurmJob, str, str]]:
    """:func:`by_id`, asked again while a record still has slurmdbd's placeholder name."""
    deadline = time.monotonic() + timeout
    while True:
        found = by_id(cluster, job_ids)
        if time.monotonic() >= deadline or all(
            name != PLACEHOLDER_NAME for _, name, _ in found.values()
        ):
            return found
        time.sleep(2.0)


def _look_up_missing(
    rows: dict[str, Any], in_slurm: dict[str, list[SlurmJob]], ledger: Ledger
) -> None:
    """Jobs with a Slurm id the window query did not list: asked by id at their site.

    The job found with the right name joins ``in_slurm`` (and ``found_by_id``);
    an id that names another job stays missing, and ``never_run`` says whose it is.
    """
    missing: dict[str, dict[str, str]] = defaultdict(dict)
    for job_id, row in rows.items():
        if row.scheduler_job_id and f"hpcgw-{job_id}" not in in_slurm and row.site in CLUSTERS:
            missing[row.site][row.scheduler_job_id] = job_id
    for site, ids in missing.items():
        for slurm_id, (job, name, eligible) in _settled_by_id(site, sorted(ids)).items():
            owner = ids.get(slurm_id)
            if owner is not None and name == f"hpcgw-{owner}":
                in_slurm[name] = [job]
                ledger.found_by_id.append(f"{site}:{slurm_id} eligible={eligible}")
            elif owner is not None:
                ledger.never_run.append(f"{owner}: {site}:{slurm_id} is Slurm job {name!r}")


def settle(
    engine: sa.Engine,
    submissions: dict[str, Submission],
    accepted: dict[str, str],
    since: datetime,
) -> Ledger:
    """Check the run: ``accepted`` maps gateway job id -> tag (every id a client was given).

    The run has its own job store, so every job in it is checked -- also those no
    client heard of (a POST whose answer was lost in a kill, then sent again).
    """
    ledger = Ledger(submitted=len(submissions), accepted=len(accepted))
    with engine.connect() as conn:
        every = {r[0] for r in conn.execute(sa.select(jobs_table.c.id))}
    rows = store_jobs(engine, every)
    ledger.in_store = len(rows)
    ledger.lost = sorted(i for i in accepted if i not in rows or rows[i].state not in FINAL)
    for job_id, row in rows.items():
        if _is_correct(row, submissions.get(_tag_of(row) or "")):
            ledger.correct += 1
        elif row.state in FINAL:
            ledger.wrong.append(f"{job_id}: {row.state}: {(row.message or '')[:200]}")
        if isinstance(row.extra, dict) and "submission_recovered" in row.extra:
            ledger.recovered += 1
    names = {f"hpcgw-{i}": i for i in rows}
    in_slurm = slurm_jobs(since, set(names))
    _look_up_missing(rows, in_slurm, ledger)
    by_cluster: dict[str, int] = defaultdict(int)
    for name, found in in_slurm.items():
        for job in found:
            by_cluster[job.cluster] += 1
        if len(found) > 1:
            ledger.duplicates[names[name]] = [f"{j.cluster}:{j.job_id}" for j in found]
    ledger.slurm_jobs_by_cluster = dict(by_cluster)
    ledger.slurm_core_hours = sum(j.cpu_seconds for f in in_slurm.values() for j in f) / 3600
    usage = usage_rows(engine, set(rows))
    ledger.usage_core_hours = sum(float(u.core_hours) for u in usage.values())
    for job_id, row in rows.items():
        found = in_slurm.get(f"hpcgw-{job_id}", [])
        if row.scheduler_job_id and not found and not _named(ledger.never_run, job_id):
            message = (row.message or "")[:160]
            ledger.never_run.append(
                f"{job_id}: {row.site}:{row.scheduler_job_id} {row.state}: {message}"
            )
        if not row.scheduler_job_id:
            continue
        if job_id not in usage:
            ledger.usage_missing.append(job_id)
        elif [j.job_id for j in found] != [usage[job_id].scheduler_job_id] or int(
            usage[job_id].cpu_seconds
        ) != sum(j.cpu_seconds for j in found):
            ledger.usage_mismatched.append(
                f"{job_id}: Slurm {[j.job_id for j in found]}, usage of"
                f" {usage[job_id].scheduler_job_id} ({usage[job_id].cpu_seconds} s)"
            )
    return ledger


def _named(entries: list[str], job_id: str) -> bool:
    return any(e.startswith(f"{job_id}:") for e in entries)


def _tag_of(row: sa.Row[Any]) -> str | None:
    inputs = row.inputs or {}
    value = inputs.get("string_input") if isinstance(inputs, dict) else None
    return value if isinstance(value, str) else None


def _output_of(row: sa.Row[Any]) -> object:
    results = row.results or {}
    return results.get("string_output") if isinstance(results, dict) else None


def _is_correct(row: sa.Row[Any], submission: Submission | None) -> bool:
    if submission is None or row.state != submission.expected:
        return False
    if submission.expected == "successful":
        return _output_of(row) == submission.tag
    return True
