"""Job arrays through every adapter, against the REAL dev Slurm clusters.

A tiled process is ONE submission (``JobSpec.array_size``): one id, which
``statuses``/``usages``/``find_by_names`` answer as one job (tasks folded) and
``cancel`` stops entirely. Cross-checked with the cluster's own ``sacct``,
where the tasks appear as ``<id>_<n>``. pyslurm refuses arrays up front.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from hpc_adapters.errors import JobRejectedError
from tests.integration.test_adapter_contract import (
    ALICE,
    S,
    job,
    recently,
    wait_final,
    wait_for,
    wait_state,
)

if TYPE_CHECKING:
    from tests.integration.adapters import AdapterUnderTest

pytest_plugins = ["tests.integration.adapters"]
pytestmark = pytest.mark.slurm

TASKS = 3


def sacct_tasks(under_test: AdapterUnderTest, job_id: str) -> dict[str, tuple[str, int]]:
    """``<id>_<n>`` -> (State, CPUTimeRAW) of every task, from the cluster's sacct."""
    out = under_test.cluster.run(
        "sacct", "-j", job_id, "-X", "-n", "-P", "-o", "JobID,State,CPUTimeRAW"
    ).stdout
    rows = (line.split("|") for line in out.splitlines() if line.strip())
    return {r[0]: (r[1], int(r[2] or 0)) for r in rows}


def skip_pyslurm(under_test: AdapterUnderTest, workdir: str) -> None:
    if under_test.kind == "pyslurm":
        with pytest.raises(JobRejectedError, match="job arrays"):
            under_test.adapter.submit(job(workdir, "true", array_size=TASKS), ALICE)
        pytest.skip("pyslurm refuses job arrays (checked above)")


def test_an_array_is_one_job_and_its_usage_sums_every_task(
    adapter_under_test: AdapterUnderTest, workdir: str
) -> None:
    skip_pyslurm(adapter_under_test, workdir)
    adapter = adapter_under_test.adapter
    spec = job(workdir, "sleep 2; touch task-$SLURM_ARRAY_TASK_ID", array_size=TASKS)
    job_id = adapter.submit(spec, ALICE)
    final = wait_final(adapter, [job_id])[job_id]
    assert final.state is S.COMPLETED and final.raw_state == "COMPLETED"
    assert final.array_tasks == (TASKS, TASKS)
    names = {n for n in adapter.files(ALICE).listdir(workdir) if n.startswith("task-")}
    assert names == {f"task-{i}" for i in range(TASKS)}

    def all_recorded() -> dict[str, tuple[str, int]] | None:
        tasks = sacct_tasks(adapter_under_test, job_id)
        done = len(tasks) == TASKS and all(s == "COMPLETED" for s, _ in tasks.values())
        return tasks if done else None

    tasks = wait_for("sacct to record every task", all_recorded, 30)
    assert set(tasks) == {f"{job_id}_{i}" for i in range(TASKS)}
    usage = adapter.usages([job_id])[job_id]
    assert usage.tasks == TASKS and usage.state is S.COMPLETED
    assert usage.cpu_seconds == sum(cpu for _, cpu in tasks.values()) > 0
    # crash recovery adopts the array by its name: one job, under the submitted id
    found = adapter.find_by_names([spec.name], recently())
    assert [s.job_id for s in found[spec.name]] == [job_id]


def test_a_failed_task_fails_the_array_with_its_exit_code(
    adapter_under_test: AdapterUnderTest, workdir: str
) -> None:
    skip_pyslurm(adapter_under_test, workdir)
    adapter = adapter_under_test.adapter
    script = 'if [ "$SLURM_ARRAY_TASK_ID" = 1 ]; then exit 3; fi'
    job_id = adapter.submit(job(workdir, script, array_size=TASKS), ALICE)
    final = wait_final(adapter, [job_id])[job_id]
    assert final.state is S.FAILED and final.reason is not None
    assert final.reason == "array task 1"
    if final.exit_code is not None:  # 22.05's accounting cannot tell a FAILED job's code
        assert final.exit_code == 3


def test_cancel_cancels_every_task(
    adapter_under_test: AdapterUnderTest, workdir: str, cancel_later: list[str]
) -> None:
    skip_pyslurm(adapter_under_test, workdir)
    adapter = adapter_under_test.adapter
    job_id = adapter.submit(job(workdir, "sleep 300", array_size=TASKS), ALICE)
    cancel_later.append(job_id)
    wait_state(adapter, job_id, S.RUNNING)
    adapter.cancel(job_id, ALICE)
    final = wait_state(adapter, job_id, S.CANCELLED, timeout=30)
    assert final.array_tasks is not None and final.array_tasks[0] == final.array_tasks[1]

    def all_cancelled() -> bool:
        tasks = sacct_tasks(adapter_under_test, job_id)
        return len(tasks) == TASKS and all(s.startswith("CANCELLED") for s, _ in tasks.values())

    wait_for(f"sacct to record every task of {job_id} as cancelled", all_cancelled, 30)
