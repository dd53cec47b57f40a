"""``python -m bench.run [--size smoke|full] [--out bench/results] [--phases ...]``.

Runs the benchmark phases against the real dev cluster, side by side with raw
slurmrestd and pygeoapi's TinyDB job manager, and writes
``<out>/bench-<size>.json`` and ``<out>/bench-<size>.md``. Every raw job is named
``bench-<run id>-*`` and every job is cancelled at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import common
from bench.common import Context
from bench.gatewayproc import REPO, make_identity
from bench.sizes import SIZES, Size

log = logging.getLogger("bench")

PHASES = (
    "overhead",
    "throughput",
    "throughput_pg",
    "acceptance_api",
    "monitor",
    "joblist",
    "staging",
    "routing",
    "eo_tiles",
)


def _phase(name: str) -> Callable[[Context], dict[str, Any]]:
    if name == "overhead":
        from bench.phase_jobs import overhead_and_lifecycle

        return overhead_and_lifecycle
    if name == "throughput":
        from bench.phase_throughput import throughput

        return throughput
    if name == "throughput_pg":
        from bench.phase_throughput import throughput_postgresql

        return throughput_postgresql
    if name == "acceptance_api":
        from bench.phase_throughput import acceptance_api_only

        return acceptance_api_only
    if name == "monitor":
        from bench.phase_monitor import monitor_cycles

        return monitor_cycles
    if name == "joblist":
        from bench.phase_joblist import joblist

        return joblist
    if name == "staging":
        from bench.phase_staging import staging

        return staging
    if name == "routing":
        from bench.phase_routing import routing_overhead

        return routing_overhead
    if name == "eo_tiles":
        from bench.phase_eo_tiles import eo_tiles

        return eo_tiles
    raise ValueError(name)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--size", choices=sorted(SIZES), default=os.environ.get("BENCH_SIZE", "full"))
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    p.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)}",
    )
    p.add_argument(
        "--user",
        default=os.environ.get("BENCH_USER", "bob"),
        help="HPC login the benchmark jobs run as (default bob)",
    )
    p.add_argument(
        "--poll-interval",
        type=float,
        default=1.0,
        help="gateway scheduler poll in seconds (worker.poll_interval_seconds; job ends are"
        " seen from their end records between polls)",
    )
    p.add_argument(
        "--client-poll",
        type=float,
        default=0.1,
        help="seconds between a client's status polls (gateway and raw alike)",
    )
    p.add_argument(
        "--service-user",
        default=os.environ.get("BENCH_SERVICE_USER", "daemon"),
        help="Slurm identity of status queries (gateway monitor and raw polls)",
    )
    p.add_argument("--no-oidc", action="store_true", help="run with auth off")
    p.add_argument(
        "--work-root",
        type=Path,
        default=Path(os.environ.get("BENCH_WORK_ROOT", "/var/lib/hpcgw/bench-work")),
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the other phases of an earlier report of the same size (re-run some)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override one size field, e.g. --set overhead_n=10 --set active_jobs=10,100",
    )
    return p.parse_args(argv)


def _override(size: Size, items: list[str]) -> Size:
    changes: dict[str, Any] = {}
    for item in items:
        key, _, raw = item.partition("=")
        current = getattr(size, key, None)
        if current is None or not raw:
            raise SystemExit(f"--set {item!r}: not FIELD=VALUE of a size field")
        if isinstance(current, tuple):
            kind = type(current[0]) if current else str
            changes[key] = tuple(kind(v) for v in raw.split(","))
        else:
            changes[key] = type(current)(raw)
    return dataclasses.replace(size, **changes) if changes else size


def run(args: argparse.Namespace) -> dict[str, Any]:
    size = _override(SIZES[args.size], args.set)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(phases) - set(PHASES)
    if unknown:
        raise SystemExit(f"unknown phases: {sorted(unknown)}")
    tmp = Path(tempfile.mkdtemp(prefix="hpcgw-bench-"))
    tmp.chmod(0o755)
    args.work_root.mkdir(parents=True, exist_ok=True)
    args.work_root.chmod(0o755)
    identity = make_identity(args.user, want_oidc=not args.no_oidc)
    ctx = Context(
        size=size,
        out_dir=args.out,
        tmp=tmp,
        work_root=args.work_root,
        user=args.user,
        identity=identity,
        poll_interval=args.poll_interval,
        client_poll=args.client_poll,
        service_user=args.service_user,
    )
    ctx.work_root = Path(ctx.workspace_dir(f"run-{ctx.run_id}"))
    report: dict[str, Any] = {
        "size": size.to_dict(),
        "run_id": ctx.run_id,
        "started": datetime.now(UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "auth": {"mode": identity.mode, "note": identity.note},
        "user": args.user,
        "phases": {},
        "phase_runs": {},
    }
    out_json = args.out / f"bench-{size.name}.json"
    if args.merge and out_json.exists():
        # re-run some phases, keep the others from the earlier report
        earlier = json.loads(out_json.read_text())
        report["phases"] = {k: v for k, v in earlier["phases"].items() if k not in phases}
        report["phase_runs"] = {
            k: earlier.get("phase_runs", {}).get(k, earlier["run_id"]) for k in report["phases"]
        }
    try:
        for name in phases:
            log.info("=== phase %s (%s) ===", name, size.name)
            start = time.monotonic()
            try:
                report["phase_runs"][name] = ctx.run_id
                report["phases"][name] = _phase(name)(ctx)
            except Exception as exc:
                log.exception("phase %s failed", name)
                report["phases"][name] = {
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc()[-4000:],
                }
            finally:
                report["phases"].setdefault(name, {})["seconds"] = round(
                    time.monotonic() - start, 1
                )
                report["cleanup"] = common.cleanup(ctx)
            common.write_json(out_json, report)
    finally:
        report["cleanup"] = common.cleanup(ctx)
        identity.close()
        report["finished"] = datetime.now(UTC).isoformat()
        common.write_json(out_json, report)
        from bench.report import markdown

        md = markdown(report)
        (args.out / f"bench-{size.name}.md").write_text(md)
        if not args.keep:
            common.remove_tree(tmp)
            common.remove_tree(ctx.work_root)
    print(md)
    print(f"report: {out_json}")
    return report


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    run(args)


if __name__ == "__main__":
    main()
