"""A site's load and associations parsed from Slurm's answers (REST and CLI shapes)."""

from __future__ import annotations

import pytest

from hpc_adapters.base import PartitionLoad
from hpc_adapters.slurm.dialects import dialect_for
from hpc_adapters.slurm.load import site_load, slurm_duration
from hpc_adapters.ssh.load import parse_queue_load

pytestmark = pytest.mark.unit

NOW = 1_800_000_000


def _n(value: int) -> dict[str, object]:
    return {"set": True, "infinite": False, "number": value}


def test_v0038_partitions_and_jobs() -> None:
    dialect = dialect_for("v0.0.38")
    totals, default = dialect.parse_partitions(
        {"partitions": [{"name": "debug", "total_cpus": 2, "flags": ["default"]}]}
    )
    assert default == "debug"
    jobs = dialect.parse_queue(
        {
            "jobs": [
                {"partition": "debug", "job_state": "PENDING", "cpus": 1, "time_limit": 10},
                {"partition": "debug", "job_state": "PENDING", "cpus": 2, "time_limit": 5},
                {
                    "partition": "debug",
                    "job_state": "RUNNING",
                    "cpus": 2,
                    "time_limit": 60,
                    "end_time": NOW + 300,
                },
                {"partition": "debug", "job_state": "COMPLETED", "cpus": 2, "time_limit": 60},
            ]
        },
        NOW,
    )
    load = site_load(totals, jobs).partitions["debug"]
    assert load == PartitionLoad(
        total_cpus=2,
        busy_cpus=2,
        pending_jobs=2,
        pending_cpu_seconds=1 * 600 + 2 * 300,
        soonest_end_seconds=300,
    )
    assert load.idle_cpus == 0


def test_v0042_structs_and_multi_partition_pending_jobs() -> None:
    dialect = dialect_for("v0.0.42")
    totals, default = dialect.parse_partitions(
        {
            "partitions": [
                {"name": "short", "cpus": {"total": 4}},
                {"name": "long", "cpus": {"total": 8}},
            ]
        }
    )
    jobs = dialect.parse_queue(
        {
            "jobs": [
                {
                    "partition": "short,long",
                    "job_state": ["PENDING"],
                    "cpus": _n(1),
                    "time_limit": _n(10),
                },
                {
                    "partition": "short",
                    "job_state": ["RUNNING"],
                    "cpus": _n(1),
                    "time_limit": _n(10),
                },
            ]
        },
        NOW,
    )
    load = site_load(totals, jobs, default)
    assert load.partition(None) is load.partitions["short"]  # none flagged: the first listed
    assert load.partitions["short"].pending_cpu_seconds == 600
    assert load.partitions["long"].pending_jobs == 1
    assert load.partitions["short"].idle_cpus == 3


def test_associations_from_slurmdb() -> None:
    body = {
        "associations": [
            {"user": "alice", "account": "gep", "cluster": "hpcgw"},
            {"user": "alice", "account": "eost", "cluster": "hpcgw"},
            {"user": "", "account": "gep", "cluster": "hpcgw"},
        ]
    }
    assert dialect_for("v0.0.42").parse_associations(body) == {"alice": frozenset({"gep", "eost"})}


def test_sinfo_and_squeue_rows_over_ssh() -> None:
    text = (
        "short*|1/3/0/4\n--hpcgw-queue--\n"
        "short|1|10:00|UNLIMITED|PENDING\n"
        "short|2|1:00:00|4:30|RUNNING\n"
        "other|8|5|5|PENDING\n"
    )
    parsed = parse_queue_load(text)
    assert parsed.default_partition == "short"
    load = parsed.partitions
    assert load == {
        "short": PartitionLoad(
            total_cpus=4,
            busy_cpus=2,
            pending_jobs=1,
            pending_cpu_seconds=600,
            soonest_end_seconds=270,
        )
    }


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5", 300), ("10:00", 600), ("1:00:00", 3600), ("1-02:00:00", 93600), ("UNLIMITED", None)],
)
def test_slurm_durations(text: str, seconds: int | None) -> None:
    assert slurm_duration(text) == seconds
