"""Phase 8 (``eo_tiles``): optical correlation of one pair as 1 task vs a job array of N tiles.

One synthetic optical pair (``eo_pixels`` square, the second image's ground
moved by 3 px east, 2 px south; textured noise written with rasterio) is
given to ``optical-correlation`` as ``file://`` inputs under the bench
gateway's ``workflow.staging.local_roots``. The same job runs twice, one after
the other: ``tiles: 1`` (one Slurm task) and ``tiles: eo_tiles`` (a job array).
Measured per run: wall time POST -> ``successful`` through the gateway, and
from Slurm accounting (``sacct``, steps included) every task's elapsed time,
CPU time actually used (``TotalCPU``) and peak memory (``MaxRSS`` of its batch
step), against the memory the process declares per task (``process.yaml``).

Reading it: the speed-up is bounded by the node's *real* cores, not by the
CPUs Slurm advertises (the dev node says 16; this machine has 2), and the
per-tile overhead is the extra CPU time the N-tile run used over the 1-task
run, divided by N (interpreter start and imports, the halo rows each tile
reads again, writing its tile; the last task's merge is included).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import Context
from bench.phase_jobs import start_bench_gateway, submit_gateway, wait_gateway

log = logging.getLogger("bench")

PROCESS = "optical-correlation"
SHIFT = (3, 2)  # ground moved east, south (pixels)
_MEM_UNITS = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2}


def make_pair(folder: Path, side: int, seed: int = 19) -> tuple[Path, Path]:
    """Two ``side`` x ``side`` uint16 GeoTIFFs; the second shows the ground moved by SHIFT."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    margin = 8
    canvas = gaussian_filter(rng.normal(size=(side + 2 * margin,) * 2), sigma=1.5)
    canvas = (canvas - canvas.min()) / np.ptp(canvas)
    dx, dy = SHIFT
    paths = []
    for name, (ox, oy) in (("reference", (0, 0)), ("secondary", (dx, dy))):
        view = canvas[margin - oy : margin - oy + side, margin - ox : margin - ox + side]
        pixels = np.rint((0.1 + 0.8 * view + rng.normal(0, 0.004, view.shape)) * 10000)
        path = folder / f"{name}.tif"
        profile = {
            "driver": "GTiff", "width": side, "height": side, "count": 1, "dtype": "uint16",
            "crs": "EPSG:32631", "transform": from_origin(500000, 5000000, 10, 10),
            "tiled": True, "blockxsize": 256, "blockysize": 256,
        }  # fmt: skip
        with rasterio.open(path, "w", **profile) as ds:
            ds.write(pixels.astype(np.uint16), 1)
        paths.append(path)
    return paths[0], paths[1]


def _mib(text: str) -> float | None:
    """sacct memory (``123456K``, ``1024M``, ``1Gn``) in MiB."""
    match = re.fullmatch(r"([\d.]+)([KMGT]?)[nc]?", text.strip())
    if not match:
        return None
    return float(match[1]) * _MEM_UNITS.get(match[2] or "M", 1.0)


def _seconds(text: str) -> float:
    """sacct ``TotalCPU`` (``[D-][HH:]MM:SS[.mmm]``) in seconds."""
    days, _, rest = text.strip().rpartition("-")
    total = 0.0
    for part in rest.split(":"):
        total = total * 60 + float(part or 0)
    return total + 86400 * int(days or 0)


def sacct_tasks(slurm_id: str, tasks: int, timeout: float = 120) -> list[dict[str, Any]]:
    """Every task of ``slurm_id`` from accounting, once all ``tasks`` have their batch step."""
    fields = "JobID,State,ElapsedRaw,TotalCPU,MaxRSS,ReqMem"
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(
            ["sacct", "-j", slurm_id, "-n", "-P", "-o", fields],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
        rows = [line.split("|") for line in out.splitlines() if line.count("|") == 5]
        allocations = {r[0]: r for r in rows if "." not in r[0]}
        batch = {r[0].removesuffix(".batch"): r for r in rows if r[0].endswith(".batch")}
        if (len(batch) >= tasks and all(b[4] for b in batch.values())) or (
            time.monotonic() > deadline
        ):
            break
        time.sleep(2)
    return [
        {
            "task": task_id,
            "state": alloc[1],
            "elapsed_s": int(alloc[2] or 0),
            "cpu_s": round(_seconds(batch[task_id][3]), 2) if task_id in batch else None,
            "max_rss_mib": _mib(batch[task_id][4]) if task_id in batch else None,
            "req_mem_mib": _mib(alloc[5]),
        }
        for task_id, alloc in sorted(allocations.items(), key=lambda kv: _task_index(kv[0]))
    ]


def _task_index(job_id: str) -> int:
    """``7459_12`` -> 12 (a plain job id -> 0), so tasks are listed in array order."""
    _, sep, tail = job_id.rpartition("_")
    return int(tail) if sep and tail.isdigit() else 0


def _job_row(db_url: str, job_id: str) -> tuple[str, dict[str, Any]]:
    """(Slurm id, results) of a gateway job, from the bench gateway's own store."""
    import sqlalchemy as sa

    from gateway.jobs.tables import jobs

    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.select(jobs.c.scheduler_job_id, jobs.c.results).where(jobs.c.id == job_id)
            ).one()
    finally:
        engine.dispose()
    return str(row[0]), dict(row[1] or {})


def _run(
    client: httpx.Client, ctx: Context, url: str, db_url: str, inputs: dict[str, Any], tiles: int
) -> dict[str, Any]:
    body = {"inputs": {**inputs, "tiles": tiles}, "outputs": {"statistics": {}}}
    start = time.perf_counter()
    job_url = submit_gateway(client, ctx, url, body, process=PROCESS)
    status = wait_gateway(client, ctx, job_url, timeout=1800)
    wall = time.perf_counter() - start
    if status != "successful":
        raise RuntimeError(f"{PROCESS} with {tiles} tiles ended {status}")
    slurm_id, results = _job_row(db_url, job_url.rsplit("/", 1)[-1])
    tasks = sacct_tasks(slurm_id, tiles)
    stats = results.get("statistics") or {}
    cpu = [t["cpu_s"] for t in tasks if t["cpu_s"] is not None]
    rss = [t["max_rss_mib"] for t in tasks if t["max_rss_mib"] is not None]
    log.info("eo_tiles: %d tile(s) %.1f s wall, Slurm job %s", tiles, wall, slurm_id)
    return {
        "tiles": tiles,
        "wall_seconds": round(wall, 2),
        "slurm_job_id": slurm_id,
        "task_elapsed_max_s": max((t["elapsed_s"] for t in tasks), default=None),
        "cpu_seconds_total": round(sum(cpu), 2),
        "max_rss_mib": round(max(rss), 1) if rss else None,
        "shift_px": [stats.get("median_east_px"), stats.get("median_south_px")],
        "tasks": tasks,
    }


def eo_tiles(ctx: Context) -> dict[str, Any]:
    from processes.registry import ProcessRegistry

    size = ctx.size
    data = ctx.phase_dir("eo_tiles-data")
    reference, secondary = make_pair(data, size.eo_pixels)
    declared = ProcessRegistry.builtin([]).get(PROCESS).hpc.resources.memory_mb

    def local_inputs(config: dict[str, Any]) -> None:
        config["workflow"] = {"staging": {"local_roots": [str(data)]}}

    gw = start_bench_gateway(ctx, "eo_tiles", adjust=local_inputs)
    inputs = {
        "reference": {"href": reference.as_uri()},
        "secondary": {"href": secondary.as_uri()},
        "window": 32,
        "step": size.eo_step,
        "upsample": 20,
    }
    try:
        with httpx.Client(timeout=60) as client:
            one = _run(client, ctx, gw.url, gw.config["database"]["url"], inputs, 1)
            many = _run(client, ctx, gw.url, gw.config["database"]["url"], inputs, size.eo_tiles)
    finally:
        gw.stop()
    n = size.eo_tiles
    cores = len(os.sched_getaffinity(0))
    ideal = one["wall_seconds"] / min(n, cores)
    return {
        "pixels": size.eo_pixels,
        "step": size.eo_step,
        "declared_memory_mib": declared,
        "one_task": one,
        "array": many,
        "speedup_wall": round(one["wall_seconds"] / many["wall_seconds"], 2),
        "per_tile_overhead_cpu_s": round(
            (many["cpu_seconds_total"] - one["cpu_seconds_total"]) / n, 2
        ),
        # what N tiles could at best take here: the 1-task time split over the real cores
        "ideal_wall_seconds": round(ideal, 2),
        "per_tile_overhead_wall_s": round((many["wall_seconds"] - ideal) / n, 2),
        "real_cores": cores,
    }
