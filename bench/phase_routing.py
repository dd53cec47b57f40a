"""Phase 7 (``routing``): what routing adds to a trivial job, against the same job pinned.

One gateway with both dev clusters as sites (``hpcgw`` cheaper, so routing
picks it while both are idle). N echo jobs *routed* (no ``hpcSite``: the
router reads both sites' queues and associations, cached
``routing.queue_cache_seconds``) are interleaved with N jobs *pinned* to
hpcgw (``"hpcSite": "hpcgw"``: no ranking). Both run the same script at the
same site; the ratio of the medians (POST -> ``successful``) is routing's
overhead. Target: <= 1.05.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import httpx

from bench.common import Context, summary
from bench.phase_jobs import start_bench_gateway, submit_gateway, wait_gateway

log = logging.getLogger("bench")

MESO_URL = os.environ.get("MESOCENTRE_SLURMRESTD_URL", "http://127.0.0.1:6920")
MESO_KEY = os.environ.get("MESOCENTRE_JWT_KEY", "/etc/slurm-mesocentre/jwt_hs256.key")
ROUTED = {"inputs": {"string_input": "bench"}}
PINNED = {**ROUTED, "hpcSite": "hpcgw"}


def two_sites(config: dict[str, Any]) -> None:
    """The bench gateway's one site becomes ``hpcgw``, beside ``mesocentre`` (dearer)."""
    hpcgw = config["sites"].pop("dev")
    meso = {
        **hpcgw,
        "slurmrest": {**hpcgw["slurmrest"], "url": MESO_URL, "jwt_key_file": MESO_KEY},
        "default_partition": "short",
    }
    config["sites"] = {"hpcgw": hpcgw, "mesocentre": meso}
    config["default_site"] = "hpcgw"
    config["accounting"] = {"prices": {"hpcgw": {"*": 0.05}, "mesocentre": {"*": 0.08}}}


def _timed(client: httpx.Client, ctx: Context, url: str, body: dict[str, Any]) -> float:
    start = time.perf_counter()
    status = wait_gateway(client, ctx, submit_gateway(client, ctx, url, body))
    if status != "successful":
        raise RuntimeError(f"a bench job ended {status}")
    return time.perf_counter() - start


def routing_overhead(ctx: Context) -> dict[str, Any]:
    n = ctx.size.overhead_n
    gw = start_bench_gateway(ctx, "routing", adjust=two_sites)
    try:
        with httpx.Client(timeout=60) as client:
            _timed(client, ctx, gw.url, ROUTED)  # warm-up: both sites read once
            routed: list[float] = []
            pinned: list[float] = []
            for i in range(n):
                pair = ((routed, ROUTED), (pinned, PINNED))
                for times, body in pair if i % 2 == 0 else pair[::-1]:
                    times.append(_timed(client, ctx, gw.url, body))
    finally:
        gw.stop()
    r, p = summary(routed), summary(pinned)
    log.info("routing: routed median %.2fs, pinned %.2fs", r["median"], p["median"])
    return {
        "n": n,
        "routed": r,
        "pinned": p,
        "ratio_median": round(r["median"] / p["median"], 3),
        "samples": {
            "routed": [round(x, 3) for x in routed],
            "pinned": [round(x, 3) for x in pinned],
        },
    }
