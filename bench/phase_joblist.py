"""Phase 4: ``GET /jobs?limit=100`` with 1k / 10k / 100k jobs, vs pygeoapi's TinyDB manager.

Gateway: a fresh store per backend (SQLite file; a scratch PostgreSQL database
created and dropped here), rows bulk-inserted with SQLAlchemy Core, a real
``hpcgw serve`` (no worker) answering ``GET /jobs?limit=100`` as the owner of
90 % of the rows; and the same request to the same application in this
process through Flask's test client (the gateway's app built from the same
configuration): the transport pygeoapi is timed through, so one ratio
compares like with like and the HTTP one shows what a client sees.
TinyDB: pygeoapi's own ``TinyDBManager`` on a TinyDB file holding the same
number of job documents, timing pygeoapi's own ``/jobs`` route
(``pygeoapi.flask_app`` with ``manager: TinyDB``, through Flask's test
client: no socket) and, separately, the storage call
``TinyDBManager.get_jobs(limit=100)``. TinyDB runs in a child process per
backend and size, bounded by ``tinydb_budget_seconds`` (beyond it: "timed
out"); its requests are *interleaved* with the gateway's (one gateway request
over HTTP, one in process, one TinyDB request, ...), so both sides see the
same load on a shared machine and their ratio stays fair when it is busy.
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
    client: httpx.Client,
    url: str,
    headers: dict[str, str],
    n: int,
    expect: int | None = 100,
    peer: _TinyDbPeer | None = None,
    local: _InProcessGateway | None = None,
) -> tuple[list[float], list[float]]:
    """``n`` timed GETs of ``url``; with ``local``, each one followed by the same request
    in process, and with ``peer`` by one TinyDB request. The HTTP and in-process times."""
    for _ in range(3):  # warm-up: both API processes, caches
        client.get(url, headers=headers).raise_for_status()
        if local is not None:
            local.time_one(url, headers, expect)
    times, local_times = [], []
    for _ in range(n):
        t = time.perf_counter()
        resp = client.get(url, headers=headers)
        times.append(time.perf_counter() - t)
        resp.raise_for_status()
        if local is not None:
            local_times.append(local.time_one(url, headers, expect))
        if peer is not None:
            peer.time_one()
    body = resp.json()
    if expect is not None and len(body.get("jobs", [])) != expect:
        raise RuntimeError(f"GET /jobs returned {len(body.get('jobs', []))} jobs, not 100")
    return times, local_times


class _InProcessGateway:
    """The gateway's application built in this process from ``config`` (what ``hpcgw
    serve`` runs), called through Flask's test client: no socket, like pygeoapi here."""

    def __init__(self, config: Path) -> None:
        from gateway.app import create_app
        from gateway.settings import load_settings

        settings = load_settings(config)
        settings.database.auto_upgrade = False  # the serving gateway migrated already
        self.app = create_app(settings)
        self.client = self.app.test_client()

    def time_one(self, url: str, headers: dict[str, str], expect: int | None) -> float:
        """One request for the path and query of ``url``; its time in seconds."""
        path = url.split("/", 3)[3]
        t = time.perf_counter()
        resp = self.client.get(f"/{path}", headers=headers)
        took = time.perf_counter() - t
        if resp.status_code != 200:
            raise RuntimeError(f"in-process GET /{path} answered {resp.status_code}")
        if expect is not None and len(resp.get_json()["jobs"]) != expect:
            raise RuntimeError(f"in-process GET /{path} did not return {expect} jobs")
        return took

    def close(self) -> None:
        self.app.extensions["hpcgw"].engine.dispose()


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
            local = _InProcessGateway(gw.config_path)
            floor, local_floor = _time_requests(
                c, f"{gw.url}/conformance", {}, ctx.size.joblist_requests, None, local=local
            )
            out["http_floor_p50_ms"] = round(statistics.median(floor) * 1000, 2)
            out["inprocess_floor_p50_ms"] = round(statistics.median(local_floor) * 1000, 2)
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
                with _TinyDbPeer(ctx, size, f"{backend}-{size}") as peer:
                    times, local_times = _time_requests(
                        c,
                        f"{gw.url}/jobs?limit=100",
                        ctx.identity.headers(),
                        ctx.size.joblist_requests,
                        peer=peer,
                        local=local,
                    )
                out["sizes"][str(size)] = {
                    "p50_ms": round(statistics.median(times) * 1000, 2),
                    "p95_ms": round(sorted(times)[int(0.95 * (len(times) - 1))] * 1000, 2),
                    "inprocess_p50_ms": round(statistics.median(local_times) * 1000, 2),
                    "fill_seconds": round(fill, 1),
                    "tinydb_interleaved": peer.result(),
                    # each TinyDB request over the gateway request (HTTP / in process) before it
                    "tinydb_ratio_paired_median": _paired_median(peer, times),
                    "tinydb_ratio_inprocess_paired_median": _paired_median(peer, local_times),
                }
                log.info(
                    "GET /jobs %s @%d: p50 %.1f ms (in process %.1f ms)",
                    backend,
                    size,
                    out["sizes"][str(size)]["p50_ms"],
                    out["sizes"][str(size)]["inprocess_p50_ms"],
                )
            local.close()
        engine.dispose()
    finally:
        if pg_name:
            drop_pg_database(PG_ADMIN_URL, pg_name)
    return out


def _paired_median(peer: _TinyDbPeer, gateway_times: list[float]) -> float | None:
    return round(statistics.median(peer.paired_ratios(gateway_times)), 1) if peer.route else None


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


def _tinydb_child(folder: str, size: int, conn: Any) -> None:
    """In a fresh interpreter: fill the TinyDB file, then time one /jobs per "go" received."""
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
        conn.send({"ready": True, "fill_seconds": round(fill, 1)})
        while conn.recv() == "go":
            t = time.perf_counter()
            resp = client.get("/jobs?limit=100&f=json")
            route = time.perf_counter() - t
            if resp.status_code != 200 or len(resp.get_json()["jobs"]) != 100:
                raise RuntimeError(f"pygeoapi /jobs answered {resp.status_code}")
            t = time.perf_counter()
            jobs = manager.get_jobs(limit=100)
            storage = time.perf_counter() - t
            if len(jobs["jobs"]) != 100:
                raise RuntimeError("get_jobs did not return 100 jobs")
            conn.send({"route": route, "storage": storage})
    except Exception as exc:
        conn.send({"error": f"{type(exc).__name__}: {exc}"})


class _TinyDbPeer:
    """pygeoapi's /jobs on TinyDB in a child process, timed one request at a time on demand.

    At most ``joblist_requests`` (capped at 20) requests, all within
    ``tinydb_budget_seconds`` from the start of the child (filling included);
    past the budget the remaining requests are skipped and the result says
    "timed out".
    """

    def __init__(self, ctx: Context, size: int, label: str) -> None:
        self.folder = ctx.phase_dir(f"tinydb-{label}")
        self.size = size
        self.budget = ctx.size.tinydb_budget_seconds
        self.wanted = min(ctx.size.joblist_requests, 20)
        self.route: list[float] = []
        self.storage: list[float] = []
        self.fill_seconds: float | None = None
        self.error: str | None = None
        self.timed_out = False

    def __enter__(self) -> _TinyDbPeer:
        mpc = mp.get_context("spawn")
        self._conn, child_conn = mpc.Pipe()
        self._proc = mpc.Process(
            target=_tinydb_child, args=(str(self.folder), self.size, child_conn)
        )
        self._deadline = time.monotonic() + self.budget
        self._proc.start()
        msg = self._receive()
        if msg is not None and msg.get("ready"):
            self.fill_seconds = msg["fill_seconds"]
        return self

    def _receive(self) -> dict[str, Any] | None:
        left = self._deadline - time.monotonic()
        if self.error or self.timed_out or left <= 0 or not self._conn.poll(left):
            self.timed_out = self.timed_out or self.error is None
            return None
        msg: dict[str, Any] = self._conn.recv()
        if "error" in msg:
            self.error = msg["error"]
            return None
        return msg

    def time_one(self) -> None:
        """One TinyDB request, if any are still wanted and the budget allows."""
        if len(self.route) >= self.wanted or self.error or self.timed_out:
            return
        self._conn.send("go")
        msg = self._receive()
        if msg is not None:
            self.route.append(msg["route"])
            self.storage.append(msg["storage"])

    def paired_ratios(self, gateway_times: list[float]) -> list[float]:
        """TinyDB time over the gateway time of the request just before it, pair by pair."""
        return [r / g for r, g in zip(self.route, gateway_times[: len(self.route)], strict=True)]

    def result(self) -> dict[str, Any]:
        if self.error:
            return {"error": self.error}
        if self.timed_out or not self.route:
            return {
                "timed_out": True,
                "budget_seconds": self.budget,
                "completed_requests": len(self.route),
                "p50_ms_of_completed": (
                    round(statistics.median(self.route) * 1000, 2) if self.route else None
                ),
            }
        return {
            "p50_ms": round(statistics.median(self.route) * 1000, 2),
            "get_jobs_p50_ms": round(statistics.median(self.storage) * 1000, 2),
            "fill_seconds": self.fill_seconds,
            "requests": len(self.route),
        }

    def __exit__(self, *exc: object) -> None:
        try:
            if self._proc.is_alive() and not self.timed_out:
                self._conn.send("stop")
            self._proc.join(timeout=5)
        finally:
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(timeout=10)
            shutil.rmtree(self.folder, ignore_errors=True)


def joblist(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {"limit": 100, "requests_per_size": ctx.size.joblist_requests}
    for backend in ctx.size.joblist_backends:
        try:
            out[backend] = _gateway_backend(ctx, backend)
        except Exception as exc:
            log.exception("job list on %s failed", backend)
            out[backend] = {"error": f"{type(exc).__name__}: {exc}"}
    # "TinyDB by size": what it answered interleaved with the first backend that ran
    out["tinydb"] = {"sizes": {}, "interleaved_with": None}
    for backend in ctx.size.joblist_backends:
        sizes = out[backend].get("sizes", {})
        if sizes:
            out["tinydb"]["interleaved_with"] = backend
            for size, res in sizes.items():
                out["tinydb"]["sizes"][size] = res["tinydb_interleaved"]
                log.info("TinyDB /jobs @%s: %s", size, res["tinydb_interleaved"])
            break
    return out
