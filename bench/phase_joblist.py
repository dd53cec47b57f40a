"""Phase 4: ``GET /jobs?limit=100`` with 1k / 10k / 100k jobs, vs pygeoapi's TinyDB manager.

Gateway: a fresh store per backend (SQLite file; a scratch PostgreSQL database
created and dropped here), rows bulk-inserted with SQLAlchemy Core, a real
``hpcgw serve`` (no worker) answering ``GET /jobs?limit=100`` as the owner of
90 % of the rows. TinyDB: pygeoapi's own ``TinyDBManager`` on a TinyDB file
holding the same number of job documents, timing pygeoapi's own ``/jobs``
route (``pygeoapi.flask_app`` with ``manager: TinyDB``, through Flask's test
client: no socket, which favours pygeoapi) and, separately, the storage call
``TinyDBManager.get_jobs(limit=100)``. Each TinyDB size runs in a
child process bounded by ``tinydb_budget_seconds``; beyond it: "timed out".
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import shutil
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench.common import Context, bulk_insert, create_pg_database, drop_pg_database, job_rows
from bench.gatewayproc import PG_ADMIN_URL, free_port, gateway_config, running_gateway

log = logging.getLogger("bench")


def _time_requests(
    client: httpx.Client, url: str, headers: dict[str, str], n: int, expect: int | None = 100
) -> list[float]:
    for _ in range(3):  # warm-up: both API processes, caches
        client.get(url, headers=headers).raise_for_status()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        resp = client.get(url, headers=headers)
        times.append(time.perf_counter() - t)
        resp.raise_for_status()
    body = resp.json()
    if expect is not None and len(body.get("jobs", [])) != expect:
        raise RuntimeError(f"GET /jobs returned {len(body.get('jobs', []))} jobs, not 100")
    return times


def _gateway_backend(ctx: Context, backend: str) -> dict[str, Any]:
    from gateway import db

    tmp = ctx.phase_dir(f"joblist-{backend}")
    pg_name = None
    if backend == "sqlite":
        db_url = f"sqlite:///{tmp}/hpcgw.db"
    else:
        pg_name = f"hpcgw_bench_{ctx.run_id}"
        db_url = create_pg_database(PG_ADMIN_URL, pg_name)
    out: dict[str, Any] = {"backend": backend, "sizes": {}}
    try:
        db.upgrade(db_url)
        ctx.identity.provision(db_url, ctx.user)
        engine = db.make_engine(db_url)
        cfg = gateway_config(
            tmp,
            free_port(),
            db_url=db_url,
            work_root=ctx.work_root,
            user=ctx.user,
            poll_interval=ctx.poll_interval,
            auth=ctx.identity.auth_settings,
        )
        owner = ctx.identity.sub or cfg["auth"]["default_user"]["sub"]
        base = datetime.now(UTC) - timedelta(days=400)
        with running_gateway(tmp, cfg, with_worker=False) as gw, httpx.Client(timeout=60) as c:
            floor = _time_requests(
                c, f"{gw.url}/conformance", {}, ctx.size.joblist_requests, expect=None
            )
            out["http_floor_p50_ms"] = round(statistics.median(floor) * 1000, 2)
            have = 0
            for size in ctx.size.joblist_sizes:
                t = time.perf_counter()
                for start in range(have, size, 20_000):
                    count = min(20_000, size - start)
                    bulk_insert(
                        engine,
                        job_rows(
                            count, start=start, owner_sub=owner, user=ctx.user, base_time=base
                        ),
                    )
                have = size
                with engine.begin() as conn:
                    conn.execute(sa.text("ANALYZE"))
                fill = time.perf_counter() - t
                times = _time_requests(
                    c,
                    f"{gw.url}/jobs?limit=100",
                    ctx.identity.headers(),
                    ctx.size.joblist_requests,
                )
                out["sizes"][str(size)] = {
                    "p50_ms": round(statistics.median(times) * 1000, 2),
                    "p95_ms": round(sorted(times)[int(0.95 * (len(times) - 1))] * 1000, 2),
                    "fill_seconds": round(fill, 1),
                }
                log.info(
                    "GET /jobs %s @%d: p50 %.1f ms",
                    backend,
                    size,
                    out["sizes"][str(size)]["p50_ms"],
                )
        engine.dispose()
    finally:
        if pg_name:
            drop_pg_database(PG_ADMIN_URL, pg_name)
    return out


# -- TinyDB -------------------------------------------------------------------------------


def _tinydb_doc(i: int) -> dict[str, Any]:
    ts = (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "type": "process",
        "identifier": f"{i:08x}-0000-4000-8000-000000000000",
        "process_id": "echo",
        "created": ts,
        "started": ts,
        "updated": ts,
        "finished": ts,
        "status": "successful",
        "location": f"/tmp/pygeoapi/echo-{i}.json",
        "mimetype": "application/json",
        "message": "Job complete",
        "progress": 100,
    }


_PYGEOAPI_CONFIG = """
server:
  bind: {host: 127.0.0.1, port: 5000}
  url: http://127.0.0.1:5000
  mimetype: application/json; charset=UTF-8
  encoding: utf-8
  language: en-US
  limits: {default_items: 10, max_items: 1000}
  map: {url: 'https://tile.openstreetmap.org/{z}/{x}/{y}.png', attribution: osm}
  manager: {name: TinyDB, connection: '@DB@', output_dir: '@OUT@'}
logging: {level: ERROR}
metadata:
  identification: {title: bench, description: bench, keywords: [bench], keywords_type: theme,
                   terms_of_service: x, url: 'http://example.org'}
  license: {name: x, url: 'http://example.org'}
  provider: {name: x, url: 'http://example.org'}
  contact: {name: x, position: x, address: x, city: x, stateorprovince: x, postalcode: x,
            country: x, phone: x, fax: x, email: x, url: x, hours: x, instructions: x,
            role: pointOfContact}
resources:
  hello-world:
    type: process
    processor: {name: HelloWorld}
"""


def _tinydb_child(folder: str, size: int, requests: int, queue: Any) -> None:
    """In a fresh interpreter: fill the TinyDB file, then time pygeoapi's /jobs route."""
    import os

    try:
        root = Path(folder)
        db_file = root / "jobs.db"
        t = time.perf_counter()
        # the document TinyDB itself writes after `size` inserts
        db_file.write_text(
            json.dumps({"_default": {str(i + 1): _tinydb_doc(i) for i in range(size)}})
        )
        fill = time.perf_counter() - t
        config = root / "pygeoapi.yml"
        config.write_text(
            _PYGEOAPI_CONFIG.replace("@DB@", str(db_file)).replace("@OUT@", str(root / "out"))
        )
        openapi = root / "openapi.yml"
        openapi.write_text('openapi: 3.0.2\ninfo: {title: bench, version: "1"}\npaths: {}\n')
        os.environ["PYGEOAPI_CONFIG"] = str(config)
        os.environ["PYGEOAPI_OPENAPI"] = str(openapi)
        from pygeoapi.flask_app import APP
        from pygeoapi.process.manager.tinydb_ import TinyDBManager

        client = APP.test_client()
        manager = TinyDBManager({"name": "TinyDB", "connection": str(db_file), "output_dir": None})
        route: list[float] = []
        storage: list[float] = []
        for _ in range(requests):
            t = time.perf_counter()
            resp = client.get("/jobs?limit=100&f=json")
            route.append(time.perf_counter() - t)
            if resp.status_code != 200 or len(resp.get_json()["jobs"]) != 100:
                raise RuntimeError(f"pygeoapi /jobs answered {resp.status_code}")
            t = time.perf_counter()
            jobs = manager.get_jobs(limit=100)
            storage.append(time.perf_counter() - t)
            if len(jobs["jobs"]) != 100:
                raise RuntimeError("get_jobs did not return 100 jobs")
            queue.put({"partial_ms": [round(x * 1000, 2) for x in route]})
        queue.put(
            {
                "p50_ms": round(statistics.median(route) * 1000, 2),
                "get_jobs_p50_ms": round(statistics.median(storage) * 1000, 2),
                "fill_seconds": round(fill, 1),
                "requests": len(route),
            }
        )
    except Exception as exc:
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def _tinydb_size(ctx: Context, size: int) -> dict[str, Any]:
    folder = ctx.phase_dir(f"tinydb-{size}")
    mpc = mp.get_context("spawn")
    queue = mpc.Queue()
    proc = mpc.Process(
        target=_tinydb_child, args=(str(folder), size, min(ctx.size.joblist_requests, 20), queue)
    )
    budget = ctx.size.tinydb_budget_seconds
    proc.start()
    deadline = time.monotonic() + budget
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            msg = queue.get(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
        except Exception:
            if not proc.is_alive():
                break
            continue
        last = msg
        if "p50_ms" in msg or "error" in msg:
            break
    if proc.is_alive():
        proc.kill()
    proc.join(timeout=10)
    shutil.rmtree(folder, ignore_errors=True)
    if "p50_ms" in last or "error" in last:
        return last
    partial = last.get("partial_ms", [])
    return {
        "timed_out": True,
        "budget_seconds": budget,
        "completed_requests": len(partial),
        "p50_ms_of_completed": round(statistics.median(partial), 2) if partial else None,
    }


def joblist(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {"limit": 100, "requests_per_size": ctx.size.joblist_requests}
    for backend in ctx.size.joblist_backends:
        try:
            out[backend] = _gateway_backend(ctx, backend)
        except Exception as exc:
            log.exception("job list on %s failed", backend)
            out[backend] = {"error": f"{type(exc).__name__}: {exc}"}
    out["tinydb"] = {"sizes": {}}
    for size in ctx.size.joblist_sizes:
        res = _tinydb_size(ctx, size)
        out["tinydb"]["sizes"][str(size)] = res
        log.info("TinyDB get_jobs @%d: %s", size, res)
    return out
