"""Benchmark sizes: ``full`` (the issue's numbers) and ``smoke`` (< 2 minutes, CI-friendly)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Size:
    name: str
    #: Phase 1: sequential trivial jobs through the gateway, and the same number raw.
    overhead_n: int
    #: Phase 2: async executions, and the concurrent clients sending them.
    throughput_jobs: int
    throughput_clients: int
    #: Longest wait for every phase-2 job to reach a final state.
    throughput_drain_seconds: float
    #: Phase 3: held jobs in the queue while one monitoring cycle is counted.
    active_jobs: tuple[int, ...]
    monitor_repeats: int
    #: Phase 4: jobs in the store, and how many GET /jobs requests are timed per size.
    joblist_sizes: tuple[int, ...]
    joblist_requests: int
    joblist_backends: tuple[str, ...]
    #: Seconds allowed to fill + query pygeoapi's TinyDB manager at one size.
    tinydb_budget_seconds: float
    #: Phase 5: size of the staged input.
    staging_bytes: int
    #: Phase 8 (eo_tiles): side of the synthetic optical pair, correlation step, array tiles.
    eo_pixels: int = 256
    eo_step: int = 8
    eo_tiles: int = 2
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


SIZES: dict[str, Size] = {
    "full": Size(
        name="full",
        overhead_n=50,
        throughput_jobs=500,
        throughput_clients=16,
        throughput_drain_seconds=900,
        active_jobs=(10, 100, 1000),
        monitor_repeats=5,
        joblist_sizes=(1_000, 10_000, 100_000),
        joblist_requests=50,
        joblist_backends=("sqlite", "postgresql"),
        tinydb_budget_seconds=180,
        staging_bytes=1 << 30,
        eo_pixels=2048,
        eo_step=8,
        eo_tiles=16,
    ),
    "smoke": Size(
        name="smoke",
        overhead_n=3,
        throughput_jobs=20,
        throughput_clients=4,
        throughput_drain_seconds=120,
        active_jobs=(10,),
        monitor_repeats=2,
        joblist_sizes=(1_000,),
        joblist_requests=10,
        joblist_backends=("sqlite", "postgresql"),
        tinydb_budget_seconds=20,
        staging_bytes=16 << 20,
        eo_pixels=256,
        eo_step=8,
        eo_tiles=2,
    ),
}
