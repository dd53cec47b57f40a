"""Phase 1 (end-to-end overhead) and the per-job-lifecycle half of phase 3 (slurmctld RPCs).

Gateway side: ``POST /processes/echo/execution`` (``Prefer: respond-async``) and
``GET /jobs/{id}`` every ``client_poll`` seconds until ``successful``.
Raw side: the *same* batch script (``gateway.workflow.batch.render_script`` of
the echo process, running the same runner on a prepared ``inputs.json``)
submitted straight to slurmrestd, ``GET /slurm/.../job/{id}`` every
``client_poll`` seconds until ``COMPLETED``. The two are interleaved so cluster
noise (other users' jobs) falls on both alike.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from bench import slurm
from bench.common import Context, summary
from bench.gatewayproc import GatewayProcess, free_port, gateway_config, start_gateway

log = logging.getLogger("bench")

ECHO_BODY = {"inputs": {"string_input": "bench"}}
FINAL = ("successful", "failed", "dismissed")


# -- gateway client ---------------------------------------------------------------------


def submit_gateway(
    client: httpx.Client,
    ctx: Context,
    url: str,
    body: dict[str, Any] = ECHO_BODY,
    process: str = "echo",
) -> str:
    resp = client.post(
        f"{url}/processes/{process}/execution",
        json=body,
        headers={"Prefer": "respond-async", **ctx.identity.headers()},
    )
    if resp.status_code != 201:
        raise RuntimeError(f"execute answered {resp.status_code}: {resp.text[:300]}")
    return str(resp.headers["Location"])


def wait_gateway(client: httpx.Client, ctx: Context, job_url: str, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(job_url, headers=ctx.identity.headers()).json().get("status")
        if status in FINAL:
            return str(status)
        time.sleep(ctx.client_poll)
    raise TimeoutError(f"gateway job {job_url} not final after {timeout} s")


def gateway_job(client: httpx.Client, ctx: Context, gw: GatewayProcess) -> tuple[float, str]:
    """One timed job; if the gateway was killed from outside (shared machine), restart it
    and time a new job instead (counted in ``gw.restarts``)."""
    for attempt in range(3):
        start = time.perf_counter()
        try:
            job_url = submit_gateway(client, ctx, gw.url)
            status = wait_gateway(client, ctx, job_url)
            return time.perf_counter() - start, status
        except httpx.TransportError:
            if attempt == 2:
                raise
            log.warning("gateway unreachable (%s); restarting it", gw.log_tail(300)[-200:])
            gw.restart()
    raise AssertionError("unreachable")


# -- raw client -------------------------------------------------------------------------


class RawEcho:
    """The echo process's own batch script, submitted without the gateway."""

    def __init__(self, ctx: Context, gw_config: dict[str, Any]) -> None:
        from gateway.settings import SiteSettings
        from gateway.workflow.batch import render_script
        from processes.registry import ProcessRegistry

        self.ctx = ctx
        self.site = SiteSettings(**gw_config["sites"]["dev"])
        self.process = ProcessRegistry.builtin([]).get("echo")
        self._render = render_script

    def prepare(self) -> tuple[str, dict[str, Any]]:
        """A workspace with ``inputs.json`` (as a user would have it), and the submit body."""
        from hpc_adapters.base import HpcIdentity
        from hpc_adapters.localfs import LocalWorkspace

        job_id = str(uuid.uuid4())
        ws = str(self.ctx.work_root / f"raw-{job_id}")
        files = LocalWorkspace(str(self.ctx.work_root), HpcIdentity(self.ctx.user))
        files.mkdir(ws)
        files.mkdir(f"{ws}/outputs")
        payload = {"job_id": job_id, "inputs": ECHO_BODY["inputs"]}
        files.write_bytes(f"{ws}/inputs.json", json.dumps(payload, indent=1).encode())
        body = self.ctx.raw.submit_body(
            f"{self.ctx.job_prefix}-raw",
            self._render(self.process, self.site, ws),
            ws,
            memory_mb=self.process.resources_for({}).memory_mb,
            stdout="slurm.out",
            stderr="slurm.err",
        )
        return ws, body

    def run(self, body: dict[str, Any]) -> tuple[float, str]:
        start = time.perf_counter()
        job_id = self.ctx.raw.submit(self.ctx.user, body)
        # polled as the service identity, like the gateway's monitor (sdiag tells them apart)
        state = self.ctx.raw.wait_final(self.ctx.service_user, job_id, self.ctx.client_poll)
        return time.perf_counter() - start, state


# -- the phases --------------------------------------------------------------------------


def start_bench_gateway(
    ctx: Context,
    name: str,
    *,
    with_worker: bool = True,
    adjust: Callable[[dict[str, Any]], None] | None = None,
    db_url: str = "",
    **kw: Any,
) -> GatewayProcess:
    """The phase's gateway (on ``db_url``, else a SQLite file of its own); ``adjust`` may
    change its configuration before it starts."""
    tmp = ctx.phase_dir(name)
    db_url = db_url or f"sqlite:///{tmp}/hpcgw.db"
    ctx.gateway_db_urls.append(db_url)
    ctx.identity.provision(db_url, ctx.user)
    config = gateway_config(
        tmp,
        free_port(),
        db_url=db_url,
        work_root=ctx.work_root,
        user=ctx.user,
        poll_interval=ctx.poll_interval,
        service_user=ctx.service_user,
        auth=ctx.identity.auth_settings,
        **kw,
    )
    if adjust is not None:
        adjust(config)
    return start_gateway(tmp, config, with_worker=with_worker)


def overhead_and_lifecycle(ctx: Context) -> dict[str, Any]:
    n = ctx.size.overhead_n
    gw = start_bench_gateway(ctx, "overhead")
    raw = RawEcho(ctx, gw.config)
    result: dict[str, Any] = {
        "n": n,
        "client_poll_seconds": ctx.client_poll,
        "worker_poll_interval_seconds": ctx.poll_interval,
    }
    try:
        with httpx.Client(timeout=60) as client:
            # warm-up: first request, first token, first Slurm submission of each kind
            gateway_job(client, ctx, gw)
            raw.run(raw.prepare()[1])

            gw_times: list[float] = []
            raw_times: list[float] = []
            failures: list[str] = []
            for i in range(n):
                order = (0, 1) if i % 2 == 0 else (1, 0)
                for which in order:
                    if which == 0:
                        seconds, status = gateway_job(client, ctx, gw)
                        if status != "successful":
                            failures.append(f"gateway: {status}")
                        gw_times.append(seconds)
                    else:
                        _, body = raw.prepare()
                        seconds, state = raw.run(body)
                        if state != "COMPLETED":
                            failures.append(f"raw: {state}")
                        raw_times.append(seconds)
            g, r = summary(gw_times), summary(raw_times)
            result.update(
                gateway=g,
                raw=r,
                ratio_median=round(g["median"] / r["median"], 3),
                ratio_p95=round(g["p95"] / r["p95"], 3),
                failures=failures,
                samples={
                    "gateway": [round(x, 3) for x in gw_times],
                    "raw": [round(x, 3) for x in raw_times],
                },
            )
            log.info("overhead: gateway median %.2fs, raw %.2fs", g["median"], r["median"])

            result["lifecycle_rpcs"] = lifecycle_rpcs(ctx, client, gw, raw)
            result["gateway_restarts"] = gw.restarts
    finally:
        gw.stop()
    return result


def lifecycle_rpcs(
    ctx: Context, client: httpx.Client, gw: GatewayProcess, raw: RawEcho
) -> dict[str, Any]:
    """slurmctld RPCs per job: sequential jobs between ``sdiag -r`` and ``sdiag``."""
    k = max(3, min(10, ctx.size.overhead_n))
    out: dict[str, Any] = {"jobs": k}

    time.sleep(1.0)  # let the last job's epilog traffic pass
    slurm.sdiag_reset()
    for _ in range(k):
        gateway_job(client, ctx, gw)
    time.sleep(1.0)
    stats = slurm.sdiag_rpcs()
    out["gateway"] = _per_job(stats, k, ctx)

    bodies = [raw.prepare()[1] for _ in range(k)]
    time.sleep(1.0)
    slurm.sdiag_reset()
    for body in bodies:
        raw.run(body)
    time.sleep(1.0)
    stats = slurm.sdiag_rpcs()
    out["raw"] = _per_job(stats, k, ctx)
    out["note"] = (
        f"status queries of both sides run as {ctx.service_user!r} (gateway monitor every "
        f"{ctx.poll_interval}s: GET /jobs; raw client every {ctx.client_poll}s: GET /job/{{id}}); "
        "submissions run as the job owner, whose counter also holds other users' traffic"
    )
    return out


def _per_job(stats: slurm.RpcStats, k: int, ctx: Context) -> dict[str, Any]:
    status = stats.count_for_user(ctx.service_user) / k
    return {
        # what the benchmark itself causes: its status queries + one submission per job
        "per_job_attributable": round(status + 1, 2),
        "per_job_status_queries": round(status, 2),
        "per_job_total": round(stats.total / k, 2),
        "per_job_by_user": {u: round(c / k, 2) for u, (c, _) in stats.by_user.items()},
        "per_job_by_type": {t: round(c / k, 2) for t, (c, _) in stats.by_type.items()},
        "per_job_job_owner_incl_others": round(stats.count_for_user(ctx.user) / k, 2),
        "submit_rpcs_per_job_all_users": round(
            stats.by_type.get("REQUEST_SUBMIT_BATCH_JOB", (0, 0))[0] / k, 2
        ),
        "raw_sdiag": stats.to_dict(),
    }
