"""Phase 3b: slurmctld RPCs of ONE monitoring cycle with 10, 100, 1,000 active jobs.

Active jobs are *held* raw jobs (``hold: true``: pending, using no CPU), named
``bench-<run>-held``, submitted by several threads and cancelled right after.
A fresh job store gets one ``queued`` row per held job; the gateway's own
services are built from settings and :meth:`Monitor.check_site` is called
between ``sdiag -r`` and ``sdiag``, so exactly one cycle is counted.
"""

from __future__ import annotations

import logging
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import slurm
from bench.common import Context, bulk_insert, job_rows
from bench.gatewayproc import free_port, gateway_config

log = logging.getLogger("bench")


def _submit_held(ctx: Context, count: int, ws: str) -> list[str]:
    body = ctx.raw.submit_body(
        f"{ctx.job_prefix}-held", "#!/bin/bash\necho held\n", ws, memory_mb=10, hold=True
    )
    ids: list[str] = []

    def one(_: int) -> None:
        ids.append(ctx.raw.submit(ctx.user, body))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))
    return ids


def _queued_rows(ctx: Context, slurm_ids: list[str], start: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    rows = job_rows(
        len(slurm_ids),
        start=start,
        owner_sub=f"bench-{ctx.user}",
        user=ctx.user,
        state="queued",
        other_owner_share=0,
        base_time=now - timedelta(minutes=5),
    )
    for row, sid in zip(rows, slurm_ids, strict=True):
        row.update(
            scheduler_job_id=sid,
            scheduler_state="PENDING",
            finished=None,
            started=None,
            results=None,
            progress=0,
            message=f"Queued as Slurm job {sid}",
            exit_code=None,
            workspace=None,
        )
    return rows


def monitor_cycles(ctx: Context) -> dict[str, Any]:
    from gateway.app import build_services
    from gateway.settings import Settings
    from gateway.workflow.monitor import Monitor

    tmp = ctx.phase_dir("monitor")
    db_url = f"sqlite:///{tmp}/hpcgw.db"
    ctx.gateway_db_urls.append(db_url)
    cfg = gateway_config(
        tmp,
        free_port(),
        db_url=db_url,
        work_root=ctx.work_root,
        user=ctx.user,
        poll_interval=ctx.poll_interval,
        service_user=ctx.service_user,
    )
    services = build_services(Settings(**cfg))
    monitor = Monitor(
        store=services.store, sites=services.sites, worker_id="bench-monitor", lease_seconds=60
    )
    ws = str(ctx.workspace_dir("held"))
    held: list[str] = []
    results: list[dict[str, Any]] = []
    try:
        # baseline: sdiag -r then sdiag with nothing in between
        slurm.sdiag_reset()
        baseline = slurm.sdiag_rpcs()
        for target in ctx.size.active_jobs:
            t = time.perf_counter()
            new = _submit_held(ctx, target - len(held), ws)
            bulk_insert(services.engine, _queued_rows(ctx, new, len(held)))
            held += new
            submit_s = time.perf_counter() - t
            monitor.check_site("dev")  # warm-up (token, connection)
            cycles = []
            for _ in range(ctx.size.monitor_repeats):
                time.sleep(0.3)
                slurm.sdiag_reset()
                t = time.perf_counter()
                seen = monitor.check_site("dev")
                wall = time.perf_counter() - t
                stats = slurm.sdiag_rpcs()
                info = stats.by_type.get("REQUEST_JOB_INFO", (0, 0))
                cycles.append(
                    {
                        "jobs_seen": seen,
                        "wall_seconds": round(wall, 4),
                        # minus sdiag's own REQUEST_STATS_INFO (the baseline)
                        "rpcs_total": stats.total - baseline.total,
                        "rpcs_service_user": stats.count_for_user(ctx.service_user),
                        "job_info_rpcs": info[0],
                        "job_info_ctld_us": info[1],
                        "by_type": {k: c for k, (c, _) in stats.by_type.items()},
                        "by_user": {k: c for k, (c, _) in stats.by_user.items()},
                    }
                )
            # where a cycle's time goes: slurmrestd's answer, and reading the store
            rest = [ctx.raw.list_jobs(ctx.service_user) for _ in range(3)]
            t = time.perf_counter()
            services.store.scheduled("dev")
            store_s = time.perf_counter() - t
            row = {
                "active_jobs": target,
                "breakdown": {
                    "slurmrestd_get_jobs_seconds": round(min(r[0] for r in rest), 4),
                    "slurmrestd_get_jobs_bytes": rest[0][1],
                    "jobs_listed_by_slurmctld": rest[0][2],
                    "store_scheduled_seconds": round(store_s, 4),
                },
                "jobs_seen_by_monitor": cycles[-1]["jobs_seen"],
                # min over repeats: other users' traffic on the shared cluster only adds
                "rpcs_per_cycle_service_user": min(c["rpcs_service_user"] for c in cycles),
                "rpcs_per_cycle_total_min": min(c["rpcs_total"] for c in cycles),
                "cycle_wall_seconds_median": round(
                    statistics.median(c["wall_seconds"] for c in cycles), 4
                ),
                "job_info_ctld_us_median": statistics.median(c["job_info_ctld_us"] for c in cycles),
                "held_submit_seconds": round(submit_s, 1),
                "cycles": cycles,
            }
            log.info(
                "monitor: %d active -> %s RPCs (service user), cycle %.3fs",
                target,
                row["rpcs_per_cycle_service_user"],
                row["cycle_wall_seconds_median"],
            )
            results.append(row)
    finally:
        slurm.cancel_ids(held)
        services.close()
    per_cycle = [r["rpcs_per_cycle_service_user"] for r in results]
    return {
        "baseline_rpcs_after_reset": baseline.to_dict(),
        "levels": results,
        "independent_of_active_jobs": len(set(per_cycle)) == 1,
        "service_user": ctx.service_user,
    }
