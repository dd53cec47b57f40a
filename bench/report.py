"""The JSON report as a short Markdown table: each figure against its target."""

from __future__ import annotations

from typing import Any

TARGETS = {
    "overhead": 1.10,
    "throughput": 0.5,
    "makespan": 1.25,
    "joblist_growth": 1.5,
    "joblist_vs_tinydb": 20.0,
    "staging": 0.8,
    "routing": 1.05,
}


def _ok(flag: bool | None) -> str:
    return "n/a" if flag is None else ("**yes**" if flag else "**NO**")


def _get(d: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


Row = tuple[str, str, str, str, str, str]


def _throughput_rows(t: dict[str, Any], api_only: Any) -> list[Row]:
    """Phase 2 on one backend: acceptance rate, makespan, and peak memory."""
    g, r = t["gateway"], t["raw"]
    backend = t.get("backend", "sqlite")
    shape = "1 API + 2 workers" if backend == "postgresql" else "serve --with-worker"
    rows: list[Row] = [
        (
            f"2. {t['jobs']} async executions, {t['clients']} clients (auth: {t['auth']}),"
            f" {backend}, {shape}",
            f"{g['per_second']:.1f} accepted/s",
            f"{r['per_second']:.1f} submissions/s",
            f"x{t['ratio']:.2f}",
            f"≥ x{TARGETS['throughput']}",
            _ok(t["ratio"] >= TARGETS["throughput"]),
        )
    ]
    states = ", ".join(f"{k} {v}" for k, v in sorted(g["final_states"].items()))
    makespan = t.get("makespan_ratio")
    rows.append(
        (
            f"2. makespan: all {t['jobs']} final ({backend}; {states})",
            f"{g['seconds_until_all_final']:.0f} s",
            f"raw left queue in {r['seconds_until_all_left_queue']:.0f} s",
            f"x{makespan:.2f}" if makespan else "",
            f"≤ x{TARGETS['makespan']} and all final",
            _ok(
                bool(g["all_final"])
                and g["accepted"] == t["jobs"]
                and makespan is not None
                and makespan <= TARGETS["makespan"]
            ),
        )
    )
    runner = t.get("raw_runner")
    if isinstance(runner, dict):
        vs = t.get("makespan_ratio_vs_runner")
        rows.append(
            (
                f"2. (diagnostic) makespan against the echo runner's own script raw ({backend})",
                f"{g['seconds_until_all_final']:.0f} s",
                f"raw runner script left queue in {runner['seconds_until_all_left_queue']:.0f} s",
                f"x{vs:.2f}" if vs else "",
                "report",
                "n/a",
            )
        )
    if backend == "sqlite" and isinstance(api_only, dict) and "per_second" in api_only:
        rows.append(
            (
                "2. (diagnostic) same load, API alone: no worker running, nothing dispatched",
                f"{api_only['per_second']:.1f} accepted/s",
                f"{r['per_second']:.1f} submissions/s",
                f"x{api_only['per_second'] / r['per_second']:.2f}",
                "report",
                "n/a",
            )
        )
    mem = _get(g, "memory", "peak_rss_mib") or {}
    rows.append(
        (
            f"6. peak RSS under phase 2 ({backend})",
            "; ".join(f"{k} {v:.0f} MiB" for k, v in mem.items()),
            f"tree total {_get(g, 'memory', 'peak_total_rss_mib')} MiB",
            "",
            "report",
            "n/a",
        )
    )
    return rows


def _rows(report: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    p = report.get("phases", {})
    rows: list[tuple[str, str, str, str, str, str]] = []

    def failed(name: str, label: str) -> bool:
        if name in p and "error" in p[name]:
            rows.append((label, f"phase failed: {p[name]['error'][:120]}", "", "", "", "**NO**"))
            return True
        return name not in p

    # 1. overhead
    o = p.get("overhead", {})
    if not failed("overhead", "1. trivial job end to end"):
        g, r = o["gateway"], o["raw"]
        rows.append(
            (
                f"1. echo job, POST→successful vs raw submit→COMPLETED (N={o['n']}), median",
                f"{g['median']:.2f} s",
                f"{r['median']:.2f} s",
                f"x{o['ratio_median']:.2f}",
                f"≤ x{TARGETS['overhead']:.2f}",
                _ok(o["ratio_median"] <= TARGETS["overhead"]),
            )
        )
        rows.append(
            (
                "1. same, p95",
                f"{g['p95']:.2f} s",
                f"{r['p95']:.2f} s",
                f"x{o['ratio_p95']:.2f}",
                f"≤ x{TARGETS['overhead']:.2f}",
                _ok(o["ratio_p95"] <= TARGETS["overhead"]),
            )
        )
    # 2. throughput, on SQLite (one serve+worker) and PostgreSQL (API + two workers)
    for name in ("throughput", "throughput_pg"):
        if not failed(name, f"2. acceptance throughput ({name})"):
            rows.extend(_throughput_rows(p[name], _get(p, "acceptance_api", "gateway")))
    # 3. scheduler load
    lc = _get(o, "lifecycle_rpcs")
    if isinstance(lc, dict) and "gateway" in lc:
        g, r = lc["gateway"], lc["raw"]
        rows.append(
            (
                f"3. slurmctld RPCs per job lifecycle ({lc['jobs']} sequential jobs)",
                f"{g['per_job_attributable']:.1f} (monitor {g['per_job_status_queries']:.1f}"
                f" + 1 submit); all users {g['per_job_total']:.1f}",
                f"{r['per_job_attributable']:.1f} (polls {r['per_job_status_queries']:.1f}"
                f" + 1 submit); all users {r['per_job_total']:.1f}",
                "",
                "report",
                "n/a",
            )
        )
    m = p.get("monitor", {})
    if not failed("monitor", "3. RPCs per monitoring cycle"):
        levels = m["levels"]
        rows.append(
            (
                "3. slurmctld RPCs per monitoring cycle @ "
                + " / ".join(str(lv["active_jobs"]) for lv in levels)
                + " held jobs",
                " / ".join(str(lv["rpcs_per_cycle_service_user"]) for lv in levels),
                "cycle wall "
                + " / ".join(f"{lv['cycle_wall_seconds_median'] * 1000:.0f}" for lv in levels)
                + " ms; slurmctld time per cycle "
                + " / ".join(f"{lv['job_info_ctld_us_median'] / 1000:.1f}" for lv in levels)
                + " ms; of which slurmrestd GET /jobs "
                + " / ".join(
                    f"{lv['breakdown']['slurmrestd_get_jobs_seconds'] * 1000:.0f}"
                    for lv in levels
                    if "breakdown" in lv
                )
                + " ms",
                "",
                "constant",
                _ok(bool(m["independent_of_active_jobs"])),
            )
        )
    # 4. job list
    j = p.get("joblist", {})
    if not failed("joblist", "4. GET /jobs"):
        tiny = _get(j, "tinydb", "sizes") or {}
        for backend in ("sqlite", "postgresql"):
            b = j.get(backend)
            if b is None:
                continue
            if "error" in b:
                rows.append(
                    (f"4. GET /jobs?limit=100 ({backend})", b["error"][:120], "", "", "", "**NO**")
                )
                continue
            sizes = b["sizes"]
            keys = list(sizes)
            first, last = sizes[keys[0]]["p50_ms"], sizes[keys[-1]]["p50_ms"]
            growth = last / first
            floor = b.get("http_floor_p50_ms", float("nan"))
            rows.append(
                (
                    f"4. GET /jobs?limit=100 p50, {backend}, @ " + " / ".join(keys) + " jobs",
                    " / ".join(f"{sizes[k]['p50_ms']:.1f}" for k in keys)
                    + " ms"
                    + _in_process_note(sizes, keys),
                    f"HTTP floor (GET /conformance) {floor:.1f} ms",
                    f"x{growth:.2f} ({keys[-1]} vs {keys[0]})",
                    f"≤ x{TARGETS['joblist_growth']}",
                    _ok(growth <= TARGETS["joblist_growth"]),
                )
            )
            ref = "10000" if "10000" in sizes else keys[-1]
            # TinyDB timed interleaved with this backend's requests (same machine load)
            tref = sizes[ref].get("tinydb_interleaved") or tiny.get(ref, {})
            if "p50_ms" in tref:
                rows += _vs_tinydb_rows(backend, ref, sizes[ref], tref["p50_ms"])
        if tiny:
            cells = []
            for k, v in tiny.items():
                if "p50_ms" in v:
                    cells.append(f"{k}: {v['p50_ms']:.0f} ms")
                elif v.get("timed_out"):
                    cells.append(f"{k}: timed out ({v['budget_seconds']:.0f} s budget)")
                else:
                    cells.append(f"{k}: {v.get('error', '?')}")
            rows.append(
                (
                    "4. pygeoapi /jobs (TinyDB) p50 by size",
                    "; ".join(cells),
                    "",
                    "",
                    "report",
                    "n/a",
                )
            )
    # 5. staging
    s = p.get("staging", {})
    if not failed("staging", "5. staging"):
        gib = s["bytes"] / 2**30
        size = f"{gib:.0f} GiB" if gib >= 1 else f"{s['bytes'] / 2**20:.0f} MiB"
        rows.append(
            (
                f"5. stage {size} from local HTTP vs curl",
                f"{s['stage_seconds']:.2f} s ({s['stage_mib_s']:.0f} MiB/s)",
                f"{s['curl_seconds']:.2f} s ({s['curl_mib_s']:.0f} MiB/s)",
                f"x{s['speed_ratio']:.2f} of curl's speed",
                f"≥ x{TARGETS['staging']}",
                _ok(s["speed_ratio"] >= TARGETS["staging"]),
            )
        )
        if "second_use_seconds" in s:
            rows.append(
                (
                    "5. second use of the same input (cache hit)",
                    f"{s['second_use_seconds']:.2f} s",
                    f"{s['curl_seconds']:.2f} s (curl)",
                    f"{s['second_use_speedup_vs_curl']:.1f}x faster than curl",
                    "report",
                    "n/a",
                )
            )
        else:
            rows.append(("5. second use (cache hit)", s["cache"], "", "", "report", "n/a"))
    # 7. routing
    ro = p.get("routing", {})
    if not failed("routing", "7. routing overhead"):
        rows.append(
            (
                f"7. echo job routed between 2 sites vs pinned to one (N={ro['n']}), median",
                f"{ro['routed']['median']:.2f} s",
                f"{ro['pinned']['median']:.2f} s",
                f"x{ro['ratio_median']:.3f}",
                f"≤ x{TARGETS['routing']:.2f}",
                _ok(ro["ratio_median"] <= TARGETS["routing"]),
            )
        )
    # 8. optical correlation as 1 task vs a job array
    eo = p.get("eo_tiles", {})
    if not failed("eo_tiles", "8. optical correlation, tiles"):
        rows += _eo_tiles_rows(eo)
    return rows


def _eo_tiles_rows(r: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    one, many = r["one_task"], r["array"]
    n, declared = many["tiles"], r["declared_memory_mib"]
    peak = max(one["max_rss_mib"] or 0, many["max_rss_mib"] or 0)
    return [
        (
            f"8. optical correlation {r['pixels']}² (step {r['step']}): {n}-tile array vs "
            "1 task, POST→successful",
            f"{many['wall_seconds']:.1f} s",
            f"{one['wall_seconds']:.1f} s",
            f"speed-up x{r['speedup_wall']:.2f} ({r['real_cores']} real cores: ideal "
            f"{r['ideal_wall_seconds']:.1f} s)",
            "report",
            "n/a",
        ),
        (
            "8. overhead per tile: CPU (sacct TotalCPU, all tasks) / wall beyond ideal",
            f"{many['cpu_seconds_total']:.1f} s CPU; {r['per_tile_overhead_cpu_s']:+.2f} s "
            f"CPU/tile; {r['per_tile_overhead_wall_s']:+.2f} s wall/tile",
            f"{one['cpu_seconds_total']:.1f} s CPU",
            "",
            "report",
            "n/a",
        ),
        (
            f"8. peak memory per task (sacct MaxRSS) vs declared {declared} MiB",
            f"{many['max_rss_mib']} MiB (max of {n} tasks)",
            f"{one['max_rss_mib']} MiB (1 task)",
            f"{peak / declared:.0%} of declared",
            f"≤ {declared} MiB",
            _ok(peak <= declared if peak else None),
        ),
    ]


def markdown(report: dict[str, Any]) -> str:
    runs = sorted(set((report.get("phase_runs") or {}).values())) or [report["run_id"]]
    lines = [
        f"Benchmark `{report['size']['name']}`, run{'s' if len(runs) > 1 else ''} "
        f"{', '.join(runs)} "
        f"({report.get('started', '')[:16]}Z, {report['machine']['cpus']} CPUs; "
        f"jobs as `{report.get('user')}`; auth: {report['auth']['note']})",
        "",
        "| measure | gateway | reference (raw Slurm / TinyDB / curl) | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for row in _rows(report):
        lines.append("| " + " | ".join(c.replace("|", "/") for c in row) + " |")
    cleanup = report.get("cleanup")
    if cleanup:
        lines += ["", f"Clean-up: {cleanup}"]
    return "\n".join(lines) + "\n"


def _vs_tinydb_rows(
    backend: str, ref: str, size: dict[str, Any], tinydb_ms: float
) -> list[tuple[str, str, str, str, str, str]]:
    """The gateway at ``ref`` jobs vs pygeoapi's TinyDB timed interleaved with it: both
    in process (the same transport: the ratio the target is read on), and over HTTP
    for the gateway (what a client sees; pygeoapi's side has no socket there)."""
    rows = []
    sides = [("inprocess_p50_ms", "tinydb_ratio_inprocess_paired_median", "both in process")]
    sides.append(("p50_ms", "tinydb_ratio_paired_median", "gateway over HTTP"))
    for key, paired_key, how in sides:
        if key not in size:
            continue
        speed = tinydb_ms / size[key]
        paired = size.get(paired_key)
        paired_note = f" (median of paired requests x{paired:.1f})" if paired else ""
        rows.append(
            (
                f"4. vs pygeoapi /jobs?limit=100 on its TinyDB manager @ {ref}, {backend}, {how}",
                f"{size[key]:.1f} ms",
                f"{tinydb_ms:.1f} ms (in process)",
                f"{speed:.1f}x faster{paired_note}",
                f"≥ {TARGETS['joblist_vs_tinydb']:.0f}x faster",
                _ok(speed >= TARGETS["joblist_vs_tinydb"]),
            )
        )
    return rows


def _in_process_note(sizes: dict[str, Any], keys: list[str]) -> str:
    if not all("inprocess_p50_ms" in sizes[k] for k in keys):
        return ""
    return " (in process " + " / ".join(f"{sizes[k]['inprocess_p50_ms']:.1f}" for k in keys) + ")"
