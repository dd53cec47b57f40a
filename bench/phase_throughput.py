"""Phase 2 (acceptance throughput) and phase 6 (peak RSS of the gateway and worker).

Raw: ``throughput_jobs`` trivial ``echo`` batch jobs POSTed straight to
slurmrestd by ``throughput_clients`` threads -> submissions/s; then wait until
they have all left the queue. Gateway: the same number of async echo
executions from the same number of client threads -> accepted/s (every 201
counted), then wait until every job is in a final state, sampling the RSS of
the API processes and the worker the whole time.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa

from bench import slurm
from bench.common import Context, scratch_postgres, summary
from bench.fleet import Member
from bench.gatewayproc import GatewayProcess, RssSampler, gateway_config
from bench.phase_jobs import ECHO_BODY, start_bench_gateway

log = logging.getLogger("bench")


def _spread(total: int, workers: int) -> list[int]:
    return [total // workers + (1 if i < total % workers else 0) for i in range(workers)]


def raw_submissions(ctx: Context, bodies: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The burst straight to slurmrestd: ``bodies`` (one per job), else the same trivial
    ``echo`` script ``throughput_jobs`` times; submissions/s and the makespan."""
    n, c = ctx.size.throughput_jobs, ctx.size.throughput_clients
    if bodies is None:
        ws = str(ctx.workspace_dir("raw-throughput"))
        echo = ctx.raw.submit_body(
            f"{ctx.job_prefix}-tput", "#!/bin/bash\necho hello\n", ws, memory_mb=100
        )
        bodies = [echo] * (n + 1)
    warm, bodies = bodies[0], bodies[1:]
    ids: list[str] = []
    latencies: list[float] = []
    errors: list[str] = []

    def client(chunk: list[dict[str, Any]]) -> None:
        for body in chunk:
            t = time.perf_counter()
            try:
                ids.append(ctx.raw.submit(ctx.user, body))
            except Exception as exc:
                errors.append(str(exc)[:200])
            latencies.append(time.perf_counter() - t)

    chunks, at = [], 0
    for k in _spread(len(bodies), c):
        chunks.append(bodies[at : at + k])
        at += k
    ctx.raw.submit(ctx.user, warm)  # warm-up (not counted)
    start = time.perf_counter()
    with ThreadPoolExecutor(c) as pool:
        list(pool.map(client, chunks))
    elapsed = time.perf_counter() - start
    drained = slurm.wait_gone(set(ids), timeout=ctx.size.throughput_drain_seconds)
    drain = time.perf_counter() - start
    return {
        "submitted": len(ids),
        "errors": errors[:5],
        "error_count": len(errors),
        "seconds": round(elapsed, 3),
        "per_second": round(len(ids) / elapsed, 2),
        "request_latency": summary(latencies),
        "all_left_queue": drained,
        "seconds_until_all_left_queue": round(drain, 1),
    }


@dataclass
class Deployment:
    """The gateway under load: one API (maybe with its embedded worker) and any separate
    ``hpcgw worker`` processes, all on one job store."""

    api: GatewayProcess
    workers: list[Member]

    def samplers(self) -> list[RssSampler]:
        pids = [self.api.proc.pid] + [m.pid for m in self.workers if m.pid is not None]
        return [RssSampler(pid) for pid in pids]

    def stop(self) -> None:
        for member in self.workers:
            member.stop()
        self.api.stop()


@contextlib.contextmanager
def deployment(ctx: Context, name: str, backend: str, with_worker: bool) -> Iterator[Deployment]:
    """``sqlite``: ``hpcgw serve --with-worker`` on a SQLite file (the demo's deployment);
    ``postgresql``: ``hpcgw serve --no-with-worker`` and two ``hpcgw worker`` processes on
    a scratch PostgreSQL database (the production shape), dropped afterwards."""
    if backend == "sqlite":
        api = start_bench_gateway(ctx, name, with_worker=with_worker)
        dep = Deployment(api, [])
        try:
            yield dep
        finally:
            dep.stop()
        return
    with scratch_postgres("hpcgw_bench") as db_url:
        ctx.gateway_db_urls.append(db_url)
        api = start_bench_gateway(ctx, name, with_worker=False, db_url=db_url)
        dep = Deployment(api, [])
        try:
            if with_worker:
                for i in (1, 2):
                    folder = ctx.phase_dir(f"{name}-worker-{i}")
                    dep.workers.append(Member(f"worker-{i}", "worker", folder, api.config))
                    dep.workers[-1].start()
                for member in dep.workers:  # not while their imports still take the CPUs
                    _wait_started(member)
            yield dep
        finally:
            dep.stop()
            ctx.gateway_db_urls.remove(db_url)


def _wait_started(member: Member, timeout: float = 90.0) -> None:
    """Until the worker's log says its loop runs (a worker has no port to probe)."""
    deadline = time.monotonic() + timeout
    while "worker started" not in member.log_tail(100_000):
        if time.monotonic() > deadline or (member.proc and member.proc.poll() is not None):
            raise RuntimeError(f"{member.name} did not start:\n{member.log_tail()}")
        time.sleep(0.2)


def gateway_acceptance(
    ctx: Context, *, with_worker: bool = True, backend: str = "sqlite"
) -> dict[str, Any]:
    """Accepted/s; with the worker(s) running (jobs go to Slurm and must all end), or the
    API alone (a diagnostic: nothing is dispatched, the rows are thrown away)."""
    n, c = ctx.size.throughput_jobs, ctx.size.throughput_clients
    name = "throughput" if with_worker else "acceptance-api-only"
    if backend != "sqlite":
        name += f"-{backend}"
    accepted: list[str] = []
    latencies: list[float] = []
    errors: list[str] = []

    with deployment(ctx, name, backend, with_worker) as dep:
        url = dep.api.url

        def client(count: int) -> None:
            with httpx.Client(timeout=120) as http:
                for _ in range(count):
                    t = time.perf_counter()
                    try:
                        resp = http.post(
                            f"{url}/processes/echo/execution",
                            json=ECHO_BODY,
                            headers={"Prefer": "respond-async", **ctx.identity.headers()},
                        )
                        if resp.status_code == 201:
                            accepted.append(resp.headers["Location"])
                        else:
                            errors.append(f"{resp.status_code}: {resp.text[:200]}")
                    except httpx.HTTPError as exc:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    latencies.append(time.perf_counter() - t)

        with httpx.Client(timeout=60) as warm:  # first request of each API process
            for _ in range(4):
                warm.get(f"{url}/processes/echo", headers=ctx.identity.headers())
        with contextlib.ExitStack() as stack:
            samplers = [stack.enter_context(s) for s in dep.samplers()]
            start = time.perf_counter()
            with ThreadPoolExecutor(c) as pool:
                list(pool.map(client, _spread(n, c)))
            elapsed = time.perf_counter() - start
            if with_worker:
                db_url = dep.api.config["database"]["url"]
                states, drained = _wait_all_final(db_url, ctx.size.throughput_drain_seconds)
            else:
                states, drained = {}, False
            drain = time.perf_counter() - start
    return {
        "backend": backend,
        "workers": len(dep.workers) if dep.workers else int(with_worker),
        "accepted": len(accepted),
        "errors": errors[:5],
        "error_count": len(errors),
        "seconds": round(elapsed, 3),
        "per_second": round(len(accepted) / elapsed, 2),
        "request_latency": summary(latencies),
        "final_states": states,
        "all_final": drained,
        "seconds_until_all_final": round(drain, 1),
        "memory": _memory(samplers),
    }


def _memory(samplers: list[RssSampler]) -> dict[str, Any]:
    """The API tree's peak RSS per role, plus each separate worker's, and their total."""
    reports = [s.report() for s in samplers]
    peak = dict(reports[0]["peak_rss_mib"])
    for i, extra in enumerate(reports[1:], start=1):
        peak[f"worker-{i} (hpcgw worker)"] = extra["peak_total_rss_mib"]
    total = sum(r["peak_total_rss_mib"] for r in reports)
    return {"peak_rss_mib": peak, "peak_total_rss_mib": round(total, 1)}


def _wait_all_final(db_url: str, timeout: float) -> tuple[dict[str, int], bool]:
    from gateway.jobs.tables import jobs

    engine = sa.create_engine(db_url)
    deadline = time.monotonic() + timeout
    counts: Counter[str] = Counter()
    try:
        while True:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state)
                ).all()
            counts = Counter({state: int(k) for state, k in rows})
            pending = sum(
                k for s, k in counts.items() if s not in ("successful", "failed", "dismissed")
            )
            if pending == 0:
                return dict(counts), True
            if time.monotonic() > deadline:
                return dict(counts), False
            time.sleep(1.0)
    finally:
        engine.dispose()


def runner_bodies(ctx: Context) -> list[dict[str, Any]]:
    """Submit bodies of the echo process's own batch script (the gateway's runner, as
    phase 1's raw side runs it), each with a prepared workspace (not timed)."""
    from bench.phase_jobs import RawEcho

    tmp = ctx.phase_dir("raw-runner")
    config = gateway_config(
        tmp,
        0,
        db_url=f"sqlite:///{tmp}/unused.db",
        work_root=ctx.work_root,
        user=ctx.user,
        poll_interval=ctx.poll_interval,
    )
    raw = RawEcho(ctx, config)
    return [raw.prepare()[1] for _ in range(ctx.size.throughput_jobs + 1)]


def throughput(ctx: Context, backend: str = "sqlite") -> dict[str, Any]:
    """The burst raw, then through the gateway on ``backend``: acceptance rate and
    makespan (until every job is final) side by side. A diagnostic second raw burst
    runs the gateway's own echo runner script: how much of the gap is the runner."""
    raw = raw_submissions(ctx)
    log.info("raw: %s submissions/s", raw["per_second"])
    raw_runner = raw_submissions(ctx, runner_bodies(ctx))
    log.info(
        "raw runner script: all left the queue in %s s", raw_runner["seconds_until_all_left_queue"]
    )
    gw = gateway_acceptance(ctx, backend=backend)
    log.info("gateway: %s accepted/s; final states %s", gw["per_second"], gw["final_states"])
    raw_makespan = raw["seconds_until_all_left_queue"]
    runner_makespan = raw_runner["seconds_until_all_left_queue"]
    return {
        "raw_runner": raw_runner,
        "makespan_ratio_vs_runner": (
            round(gw["seconds_until_all_final"] / runner_makespan, 3) if runner_makespan else None
        ),
        "jobs": ctx.size.throughput_jobs,
        "clients": ctx.size.throughput_clients,
        "auth": ctx.identity.mode,
        "backend": backend,
        "raw": raw,
        "gateway": gw,
        "ratio": round(gw["per_second"] / raw["per_second"], 3) if raw["per_second"] else None,
        "makespan_ratio": (
            round(gw["seconds_until_all_final"] / raw_makespan, 3) if raw_makespan else None
        ),
    }


def throughput_postgresql(ctx: Context) -> dict[str, Any]:
    """Phase 2 on the production shape: PostgreSQL, one API, two ``hpcgw worker``."""
    return throughput(ctx, backend="postgresql")


def acceptance_api_only(ctx: Context) -> dict[str, Any]:
    """Diagnostic for phase 2: the API's own acceptance rate, no worker competing for the
    CPUs and the SQLite file (no Slurm job is created)."""
    res = gateway_acceptance(ctx, with_worker=False)
    for key in ("final_states", "all_final", "seconds_until_all_final"):
        res.pop(key, None)
    log.info("gateway API alone: %s accepted/s", res["per_second"])
    return {
        "jobs": ctx.size.throughput_jobs,
        "clients": ctx.size.throughput_clients,
        "auth": ctx.identity.mode,
        "gateway": res,
    }
