"""Job arrays as one job: folding real slurmrestd/squeue/sacct answers, the array submission.

``fixtures/slurmrest/v00{38,42}_jobs_array_running.json`` and ``..._db_jobs_array.json``
are real answers of the dev clusters (22.05 and 24.11) about one array of 3
tasks (``--array=0-2%1``; task 2 exits 3): while task 0 runs and the other two
wait, and after all ended.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hpc_adapters.arrays import collapse_statuses, fold_statuses
from hpc_adapters.base import JobSpec, JobStatus, SchedulerState, Usage
from hpc_adapters.slurm.dialects import AccountingRecord, V0038Dialect, dialect_for
from hpc_adapters.slurm.script import sbatch_options
from hpc_adapters.slurm.statuses import merge_statuses, merge_usages
from hpc_adapters.ssh.commands import parse_squeue
from hpc_adapters.ssh.sacct import parse_sacct

pytestmark = pytest.mark.unit

S = SchedulerState
FIXTURES = Path(__file__).parent / "fixtures" / "slurmrest"
DIALECTS = {"v0038": V0038Dialect(), "v0042": dialect_for("v0.0.42")}


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


@pytest.mark.parametrize("version", list(DIALECTS))
def test_a_running_array_is_one_running_job(version: str) -> None:
    dialect = DIALECTS[version]
    live = dialect.parse_jobs(fixture(f"{version}_jobs_array_running"))
    assert len(live) == 2 and all(s.array_job_id for s in live)  # one task runs, one record waits
    array_id = live[0].array_job_id or ""
    got = merge_statuses([array_id], live, lambda ids: [])
    assert list(got) == [array_id]
    assert got[array_id].state is S.RUNNING and got[array_id].array_tasks == (0, 2)
    assert got[array_id].end_time is None


@pytest.mark.parametrize("version", list(DIALECTS))
def test_an_ended_array_fails_with_its_failed_task_and_sums_usage(version: str) -> None:
    dialect = DIALECTS[version]
    records = dialect.parse_db_jobs(fixture(f"{version}_db_jobs_array"))
    assert len(records) == 3
    array_id = next(r.status.job_id for r in records if r.status.array_task_id == 2)
    got = merge_statuses([array_id], [], lambda ids: records)[array_id]
    assert got.state is S.FAILED and got.reason == "array task 2"
    assert got.exit_code in (3, None)  # 22.05's slurmdb cannot tell a FAILED job's code
    assert got.array_tasks == (3, 3)
    usage = merge_usages([array_id], records)[array_id]
    assert usage.tasks == 3 and usage.state is S.FAILED
    assert usage.cpu_seconds == sum(r.usage.cpu_seconds for r in records) > 0
    assert usage.elapsed_seconds == sum(r.usage.elapsed_seconds for r in records)


def test_accounting_replaces_an_ended_array_only_when_it_knows_every_task() -> None:
    def task(n: int, state: SchedulerState) -> JobStatus:
        return JobStatus(str(10 + n), state, state.value, array_job_id="10", array_task_id=n)

    live = [task(0, S.COMPLETED), task(1, S.COMPLETED)]
    recorded = task(0, S.COMPLETED)  # slurmdbd has recorded one task so far
    partial = [
        AccountingRecord(recorded, Usage("10", "alice", None, None, S.COMPLETED, 0, 1, 1, 1))
    ]
    got = merge_statuses(["10"], live, lambda ids: partial)["10"]
    assert got.state is S.COMPLETED and got.array_tasks == (2, 2)  # live knew more


def test_squeue_and_sacct_rows_of_array_tasks() -> None:
    squeue = (
        "21|RUNNING|0|None|alice|1|2|3|20|1|hpcgw-a\n"
        "20|PENDING|0|JobArrayTaskLimit|alice|1|N/A|N/A|20|2-3%1|hpcgw-a\n"
        "22|COMPLETED|0:0|None|alice|1|2|3|20|0|hpcgw-a\n"
        "30|RUNNING|0|None|bob|1|2|3|30|N/A|plain\n"
    )
    folded = {s.job_id: s for s in collapse_statuses(parse_squeue(squeue))}
    assert set(folded) == {"20", "30"}
    assert folded["20"].state is S.RUNNING and folded["20"].array_tasks == (1, 3)
    assert folded["30"].array_tasks is None  # a plain job passes through
    sacct = (
        "41|COMPLETED|0:0|None|alice|gep|debug|1|4|4|00:01.000|billing=1||1|2|6|40_0|hpcgw-a\n"
        "40|FAILED|3:0|None|alice|gep|debug|1|5|5|00:01.000|billing=1||1|2|7|40_1|hpcgw-a\n"
        "40.batch|FAILED|3:0|||gep||1|5|5|00:01.000||2M|1|2|7|40_1.batch|batch\n"
    )
    records = parse_sacct(sacct)
    usage = merge_usages(["40"], records)["40"]
    assert (usage.tasks, usage.cpu_seconds, usage.billing, usage.state) == (2, 9, 2, S.FAILED)
    assert usage.max_rss_bytes == 2 * 1024 * 1024
    status = merge_statuses(["40"], [], lambda ids: records)["40"]
    assert (status.state, status.exit_code, status.reason) == (S.FAILED, 3, "array task 1")


def test_a_cancelled_array_is_cancelled() -> None:
    tasks = [
        JobStatus("51", S.CANCELLED, "CANCELLED by 0", array_job_id="50", array_task_id=1),
        JobStatus("50", S.CANCELLED, "CANCELLED by 0", array_job_id="50", array_task_id=2),
        JobStatus("52", S.COMPLETED, "COMPLETED", array_job_id="50", array_task_id=0),
    ]
    folded = fold_statuses("50", tasks)
    assert folded.state is S.CANCELLED and folded.reason == "array task 1"


def test_the_array_is_one_submission_with_its_range() -> None:
    spec = JobSpec(name="hpcgw-x", script="true", workdir="/w", array_size=4)
    assert "--array=0-3" in sbatch_options(spec)
    for dialect in DIALECTS.values():
        body = dialect.submit_body(spec, {"PATH": "/usr/bin"})
        assert body["job"]["array"] == "0-3" and body["job"]["name"] == "hpcgw-x"
    plain = JobSpec(name="hpcgw-y", script="true", workdir="/w")
    assert not any(o.startswith("--array") for o in sbatch_options(plain))
    with pytest.raises(ValueError, match="array size"):
        sbatch_options(JobSpec(name="z", script="true", workdir="/w", array_size=0))
