"""Phase 5: staging a large input vs ``curl`` of the same file from the same local server.

The server is ``python -m http.server`` in its own process (so neither client
shares an interpreter with it). The gateway side is the stager the worker
builds (``gateway.staging.build_stager`` with the egress guard and the
content-addressed cache, loopback allowed), staging into a workspace through
``LocalWorkspace`` like the dispatcher. ``curl -o`` writes into the same
workspace folder. Runs alternate: curl, stage with an empty cache (miss), x2;
then the same input staged again into a new workspace (cache hit), x2.
The result says which HTTP backend the stager used (``http_backend``: curl or
httpx, see ``workflow.staging.http_backend``) and how the input reached the
workspace (``placement``: a hard link to the cache object, or a copy).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.common import Context
from bench.gatewayproc import free_port

log = logging.getLogger("bench")

MIB = 1024 * 1024


def _make_file(path: Path, size: int) -> None:
    block = os.urandom(MIB)
    with path.open("wb") as fh:
        left = size
        while left > 0:
            fh.write(block[: min(MIB, left)])
            left -= MIB


@contextlib.contextmanager
def _file_server(root: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                httpx.head(f"{url}/", timeout=1)
                break
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _build_stager(cache_root: Path, size: int) -> tuple[Any, str]:
    """The worker's stager (new staging package), or the older one; and what cache it has."""
    try:
        from gateway.egress import EgressPolicy
        from gateway.settings_workflow import WorkflowSettings
        from gateway.staging import build_stager

        settings = WorkflowSettings(
            egress={"allow_cidrs": ["127.0.0.0/8"]},
            cache={"enabled": True, "root": str(cache_root), "max_bytes": 4 * size + MIB},
        )
        stager = build_stager(settings, EgressPolicy.from_settings(settings.egress))
        has_cache = getattr(stager, "cache", None) is not None
        return stager, "content-addressed cache" if has_cache else "no cache yet"
    except ImportError:
        from gateway.staging import Stager  # type: ignore[attr-defined]

        return Stager(), "no cache yet"


def staging(ctx: Context) -> dict[str, Any]:
    from hpc_adapters.base import HpcIdentity
    from hpc_adapters.localfs import LocalWorkspace

    size = ctx.size.staging_bytes
    served = ctx.phase_dir("staging-served")
    cache_root = ctx.phase_dir("staging-cache")
    src = served / "input.bin"
    _make_file(src, size)
    files = LocalWorkspace(str(ctx.work_root), HpcIdentity(ctx.user))
    stager, cache_kind = _build_stager(cache_root, size)
    holder = {"stager": stager}
    http = getattr(stager, "http", None)
    backend = "curl" if getattr(http, "large", None) is not None else "httpx"
    out: dict[str, Any] = {"bytes": size, "cache": cache_kind, "http_backend": backend, "runs": []}
    placements: set[str] = set()
    curl_s: list[float] = []
    miss_s: list[float] = []
    hit_s: list[float] = []

    def stage(tag: str) -> float:
        ws = str(ctx.workspace_dir(f"stage-{tag}"))
        t = time.perf_counter()
        staged = holder["stager"].stage({"data": {"href": f"{url}/input.bin"}}, files, ws)
        elapsed = time.perf_counter() - t
        if staged["data"].get("size") != size:
            raise RuntimeError(f"staged {staged['data'].get('size')} bytes, not {size}")
        placed = Path(ws) / staged["data"]["path"]
        placements.add("hard link" if placed.stat().st_nlink > 1 else "copy")
        shutil.rmtree(ws, ignore_errors=True)
        return elapsed

    with _file_server(served) as url:
        for rep in range(2):
            ws = ctx.workspace_dir(f"curl-{rep}")
            t = time.perf_counter()
            subprocess.run(
                ["curl", "-sS", "--fail", "-o", str(ws / "input.bin"), f"{url}/input.bin"],
                check=True,
            )
            curl_s.append(time.perf_counter() - t)
            shutil.rmtree(ws, ignore_errors=True)
            shutil.rmtree(cache_root, ignore_errors=True)
            cache_root.mkdir()
            holder["stager"] = _build_stager(cache_root, size)[0]  # empty cache: a miss
            miss_s.append(stage(f"miss-{rep}"))
            out["runs"].append({"curl_s": round(curl_s[-1], 3), "stage_s": round(miss_s[-1], 3)})
        if cache_kind != "no cache yet":
            for rep in range(2):
                hit_s.append(stage(f"hit-{rep}"))
    src.unlink(missing_ok=True)
    shutil.rmtree(cache_root, ignore_errors=True)
    best_curl, best_miss = min(curl_s), min(miss_s)
    out.update(
        placement=", ".join(sorted(placements)),
        curl_seconds=round(best_curl, 3),
        curl_mib_s=round(size / MIB / best_curl, 1),
        stage_seconds=round(best_miss, 3),
        stage_mib_s=round(size / MIB / best_miss, 1),
        speed_ratio=round(best_curl / best_miss, 3),
    )
    if hit_s:
        out.update(
            second_use_seconds=round(min(hit_s), 3),
            second_use_mib_s=round(size / MIB / min(hit_s), 1),
            second_use_speedup_vs_curl=round(best_curl / min(hit_s), 2),
        )
    log.info(
        "staging (%s, %s): curl %.2fs, stage %.2fs, second use %s",
        backend,
        out["placement"],
        best_curl,
        best_miss,
        out.get("second_use_seconds", cache_kind),
    )
    return out
