"""``python -m bench.chaos [--size smoke|full]``: N jobs, K SIGKILLs, then count.

For each deployment -- ``sqlite`` (one ``hpcgw serve --with-worker``) and
``postgresql`` (two ``hpcgw serve`` + two ``hpcgw worker`` on one database, the
APIs sending to different clusters) -- the run:

1. starts the gateway as real processes (:mod:`bench.fleet`) with a fresh job
   store (a SQLite file; a scratch PostgreSQL database, dropped afterwards);
2. sends N asynchronous echo executions, paced over a burst, from a few
   client threads (every fifth made to fail with ``exit_code``, every third
   pausing a second); a client whose request fails because its API was killed
   sends it again to the next API;
3. meanwhile SIGKILLs K random members (their whole process group) at random
   moments of the run, restarting each after a short random delay;
4. waits until every job is final and every usage record is written, then
   checks with :func:`bench.ledger.settle`: correct final states, lost jobs,
   duplicate Slurm jobs in each cluster's accounting, core-hours in Slurm vs in
   the usage records.

Writes ``bench/results/chaos-<size>.json`` and ``.md``; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench.common import scratch_postgres
from bench.fleet import Fleet, Member, single_instance, two_by_two
from bench.ledger import Submission, settle, unfinished, wait_usage
from gateway.jobs.tables import jobs as jobs_table

log = logging.getLogger("bench")

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ChaosSize:
    jobs: int
    kills: int
    #: Submissions are spread over this many seconds; kills fall in burst + tail.
    burst_seconds: float
    tail_seconds: float
    clients: int = 4
    lease_seconds: float = 10.0
    drain_seconds: float = 1800.0


SIZES = {
    "smoke": ChaosSize(jobs=40, kills=3, burst_seconds=20, tail_seconds=20, drain_seconds=600),
    "full": ChaosSize(jobs=1000, kills=10, burst_seconds=150, tail_seconds=120),
}


def submissions(n: int, run_id: str) -> list[Submission]:
    """N echo executions: every fifth fails (exit code 3), every third pauses 1 s."""
    return [
        Submission(
            tag=f"chaos-{run_id}-{i}",
            exit_code=3 if i % 5 == 4 else 0,
            pause=1.0 if i % 3 == 0 else 0.0,
        )
        for i in range(n)
    ]


# -- clients ------------------------------------------------------------------------


@dataclass
class Clients:
    """Threads posting the executions on schedule, each retried until an API accepts it."""

    fleet: Fleet
    todo: list[Submission]
    burst_seconds: float
    threads: int
    give_up_seconds: float = 600.0
    #: gateway job id -> tag, for every 201 received.
    accepted: dict[str, str] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    resent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        start = time.monotonic()
        gap = self.burst_seconds / max(1, len(self.todo))
        workers = [
            threading.Thread(target=self._client, args=(k, start, gap), daemon=True)
            for k in range(self.threads)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    def _client(self, k: int, start: float, gap: float) -> None:
        apis = self.fleet.api_urls
        first = k % len(apis)
        urls = itertools.cycle(apis[first:] + apis[:first])  # clients start on different APIs
        with httpx.Client(timeout=30) as http:
            for i in range(k, len(self.todo), self.threads):
                time.sleep(max(0.0, start + i * gap - time.monotonic()))
                self._post(http, urls, self.todo[i])

    def _post(self, http: httpx.Client, urls: Iterator[str], sub: Submission) -> None:
        deadline = time.monotonic() + self.give_up_seconds
        tries = 0
        while time.monotonic() < deadline:
            url = next(urls)
            tries += 1
            try:
                resp = http.post(
                    f"{url}/processes/echo/execution",
                    json=sub.body(),
                    headers={"Prefer": "respond-async"},
                )
            except httpx.TransportError:
                time.sleep(0.3)
                continue
            if resp.status_code == 201:
                job_id = resp.headers["Location"].rstrip("/").rsplit("/", 1)[1]
                with self._lock:
                    self.accepted[job_id] = sub.tag
                    self.resent += tries - 1
                return
            if resp.status_code >= 500:
                time.sleep(0.3)
                continue
            break
        with self._lock:
            self.refused.append(sub.tag)


# -- the killer ---------------------------------------------------------------------


@dataclass
class Killer:
    """SIGKILLs ``kills`` random members at random moments of ``window`` seconds."""

    fleet: Fleet
    kills: int
    window: float
    rng: random.Random
    events: list[dict[str, Any]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        start = time.monotonic()
        moments = sorted(self.rng.uniform(1.0, self.window) for _ in range(self.kills))
        for at in moments:
            if self.stop.wait(max(0.0, start + at - time.monotonic())):
                return
            member = self.rng.choice(self.fleet.members)
            self.strike(member, start)

    def strike(self, member: Member, start: float) -> None:
        """Kill ``member`` now, restart it after a short random pause."""
        at = round(time.monotonic() - start, 1)
        member.kill()
        down = self.rng.uniform(0.2, 2.0)
        time.sleep(down)
        member.restart()
        self.events.append({"t": at, "member": member.name, "down_s": round(down, 1)})


@dataclass
class LeaseHolderKill:
    """Kills ``victim`` (a ``hpcgw worker``) once it holds job leases -- mid-cycle --
    and does not restart it: the other workers must take its leases over."""

    fleet: Fleet
    victim: Member
    engine: sa.Engine
    at_least: int = 2
    timeout: float = 300.0
    events: list[dict[str, Any]] = field(default_factory=list)
    #: The jobs (id -> state) the victim held leases on when it was killed.
    held: dict[str, str] = field(default_factory=dict)

    def run(self) -> None:
        start = time.monotonic()
        j = jobs_table
        while time.monotonic() - start < self.timeout:
            owner = f"%:{self.victim.pid}:%"
            query = sa.select(j.c.id, j.c.state).where(
                j.c.lease_owner.like(owner), j.c.lease_until > datetime.now(UTC)
            )
            with self.engine.connect() as conn:
                held = {r.id: r.state for r in conn.execute(query)}
            if len(held) >= self.at_least:
                self.victim.kill()
                self.held = held
                self.events.append(
                    {"t": round(time.monotonic() - start, 1), "member": self.victim.name}
                )
                return
            time.sleep(0.05)


# -- one deployment -----------------------------------------------------------------


def run_fleet(
    fleet: Fleet,
    size: ChaosSize,
    seed: int,
    run_id: str,
    killer: Killer | LeaseHolderKill | None = None,
) -> dict[str, Any]:
    """Load ``fleet`` with ``size.jobs`` executions under ``size.kills`` random kills (or
    under ``killer``); the figures, with the :class:`Ledger` under ``ledger``."""
    rng = random.Random(seed)
    todo = submissions(size.jobs, run_id)
    since = datetime.now(UTC) - timedelta(minutes=2)
    fleet.start()
    engine = sa.create_engine(fleet.db_url)
    try:
        clients = Clients(fleet, todo, size.burst_seconds, size.clients)
        if killer is None:
            killer = Killer(fleet, size.kills, size.burst_seconds + size.tail_seconds, rng)
        started = time.monotonic()
        kill_thread = threading.Thread(target=killer.run, daemon=True)
        kill_thread.start()
        clients.run()
        accepted_s = time.monotonic() - started
        drained = _wait_final(engine, set(clients.accepted), size.drain_seconds)
        final_s = time.monotonic() - started
        kill_thread.join()  # every kill happens, even after the jobs are done
        drained = drained and _wait_final(engine, set(clients.accepted), size.drain_seconds)
        usage_ok = wait_usage(engine, set(clients.accepted), 300)
        ledger = settle(engine, {s.tag: s for s in todo}, clients.accepted, since)
    finally:
        fleet.stop()
        engine.dispose()
    return {
        "jobs": size.jobs,
        "kills": killer.events,
        "kills_per_member": fleet.kills(),
        "accepted": len(clients.accepted),
        "refused": clients.refused[:5],
        "requests_resent": clients.resent,
        "all_final": drained,
        "usage_complete": usage_ok,
        "seconds_to_accept_all": round(accepted_s, 1),
        "seconds_to_final": round(final_s, 1),
        "ledger": ledger.summary(),
        "ok": ledger.ok and drained and usage_ok and not clients.refused,
    }


def _wait_final(engine: sa.Engine, ids: set[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while unfinished(engine, ids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(1.0)
    return True


def run_deployment(
    kind: str, tmp: Path, work_root: Path, user: str, size: ChaosSize, seed: int
) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    folder = tmp / kind
    if kind == "sqlite":
        fleet = single_instance(folder, work_root, user, "hpcgw", size.lease_seconds)
        return run_fleet(fleet, size, seed, run_id)
    with scratch_postgres("hpcgw_chaos") as db_url:
        fleet = two_by_two(folder, work_root, user, db_url, size.lease_seconds)
        return run_fleet(fleet, size, seed, run_id)


# -- report -------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Chaos `{report['size']}` (seed {report['seed']}, {report['started']}): "
        f"{report['jobs']} jobs, {report['kills']} SIGKILLs per deployment",
        "",
        "| deployment | correct final | lost | duplicate Slurm jobs | Slurm jobs per cluster "
        "| core-hours Slurm / usage | recovered (adopted) | kills | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, res in report["deployments"].items():
        if "error" in res:
            lines.append(f"| {kind} | error: {res['error']} | | | | | | | **NO** |")
            continue
        led = res["ledger"]
        lines.append(
            f"| {kind} | {led['correct']}/{led['in_store']} (accepted {res['accepted']}) "
            f"| {led['lost']['count']} | {led['duplicates']['count']} "
            f"| {led['slurm_jobs_by_cluster']} "
            f"| {led['slurm_core_hours']:.4f} / {led['usage_core_hours']:.4f} "
            f"| {led['recovered']} | {res['kills_per_member']} "
            f"| {'**yes**' if res['ok'] else '**NO**'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    p.add_argument("--size", choices=sorted(SIZES), default="smoke")
    p.add_argument("--deployments", default="sqlite,postgresql")
    p.add_argument("--jobs", type=int, help="override the size's number of jobs")
    p.add_argument("--kills", type=int, help="override the size's number of kills")
    p.add_argument("--seed", type=int, default=int(time.time()))
    p.add_argument("--user", default="alice")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    p.add_argument("--work-root", type=Path, default=Path("/var/lib/hpcgw/bench-work"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    size = SIZES[args.size]
    if args.jobs or args.kills:
        size = ChaosSize(
            **{**size.__dict__, "jobs": args.jobs or size.jobs, "kills": args.kills or size.kills}
        )
    tmp = Path(tempfile.mkdtemp(prefix="hpcgw-chaos-"))
    tmp.chmod(0o755)
    work_root = args.work_root / f"chaos-{uuid.uuid4().hex[:8]}"
    work_root.mkdir(parents=True, mode=0o755)
    work_root.chmod(0o755)
    report: dict[str, Any] = {
        "size": args.size,
        "jobs": size.jobs,
        "kills": size.kills,
        "seed": args.seed,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": size.__dict__,
        "deployments": {},
    }
    try:
        for kind in [k.strip() for k in args.deployments.split(",") if k.strip()]:
            log.info("=== chaos on %s: %d jobs, %d kills ===", kind, size.jobs, size.kills)
            try:
                report["deployments"][kind] = run_deployment(
                    kind, tmp, work_root, args.user, size, args.seed
                )
            except Exception as exc:  # report it, go on with the other deployment
                log.exception("chaos on %s failed", kind)
                report["deployments"][kind] = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"chaos-{args.size}.json").write_text(json.dumps(report, indent=2))
        md = markdown(report)
        (args.out / f"chaos-{args.size}.md").write_text(md)
        shutil.rmtree(work_root, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print(md)
    return 0 if all(d.get("ok") for d in report["deployments"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
