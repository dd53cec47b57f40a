"""The SchedulerAdapter contract, against the REAL dev Slurm clusters, for every adapter.

Each test runs once per adapter x cluster pair in ``tests/integration/adapters.py``
(slurmrest and ssh on hpcgw/22.05 and mesocentre/24.11, the older 24.11 REST
dialects, pyslurm on hpcgw). Jobs run as alice in workspaces under the test
work root; facts are cross-checked with *that cluster's* Slurm CLI (``sacct``,
``squeue``, ``scontrol``) rather than with the adapter itself.
"""

from __future__ import annotations

import pwd
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from hpc_adapters.base import HpcIdentity, JobSpec, JobStatus, SchedulerAdapter, SchedulerState
from hpc_adapters.errors import InvalidJobError, JobRejectedError, TransportError
from tests.conftest import WORK_ROOT
from tests.polling import eventually

if TYPE_CHECKING:
    from tests.integration.adapters import AdapterUnderTest

# The fixtures (adapter_under_test, unreachable_adapter, workdir, cancel_later) live there.
pytest_plugins = ["tests.integration.adapters"]
pytestmark = pytest.mark.slurm

S = SchedulerState
ALICE = HpcIdentity("alice")


def recently() -> datetime:
    """A start time for name lookups: a little before this test's jobs."""
    return datetime.now(UTC) - timedelta(minutes=10)


T = TypeVar("T")


# ---------------------------------------------------------------- helpers ----


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float = 0.5) -> T:
    """:func:`tests.polling.eventually`, with what is awaited first (reads as a sentence)."""
    return eventually(probe, timeout, what, every=every)


def wait_final(
    adapter: SchedulerAdapter, job_ids: Sequence[str], timeout: float = 90
) -> dict[str, JobStatus]:
    def probe() -> dict[str, JobStatus] | None:
        got = adapter.statuses(job_ids)
        done = all(j in got and not got[j].state.active for j in job_ids)
        return got if done else None

    return wait_for(f"jobs {list(job_ids)} to end", probe, timeout)


def wait_state(
    adapter: SchedulerAdapter, job_id: str, state: SchedulerState, timeout: float = 60
) -> JobStatus:
    def probe() -> JobStatus | None:
        st = adapter.statuses([job_id]).get(job_id)
        return st if st is not None and st.state is state else None

    return wait_for(f"job {job_id} to be {state.value}", probe, timeout)


def job(workdir: str, script: str, **kw: Any) -> JobSpec:
    name = f"contract-{uuid.uuid4().hex[:10]}"
    return JobSpec(name=name, script=script, workdir=workdir, time_limit_minutes=5, **kw)


# ------------------------------------------------------------------ tests ----


def test_adapter_honours_the_protocol(adapter_under_test: AdapterUnderTest) -> None:
    cluster = adapter_under_test.cluster
    assert isinstance(adapter_under_test.adapter, SchedulerAdapter)
    facts = adapter_under_test.adapter.check()
    assert facts["slurm_release"].startswith(cluster.release)
    assert facts["cluster"] == cluster.name
    if adapter_under_test.kind == "slurmrest":  # auto: the newest dialect the server offers
        assert facts["dialect"] == cluster.api_version


def test_submit_runs_as_the_user_and_files_belong_to_them(
    adapter_under_test: AdapterUnderTest, workdir: str
) -> None:
    cluster = adapter_under_test.cluster
    adapter = adapter_under_test.adapter
    files = adapter.files(ALICE)
    files.write_bytes(f"{workdir}/inputs.json", b'{"n": 1}')
    script = "id -un > whoami.txt\ncat inputs.json\necho done > out/result.txt\n"
    files.mkdir(f"{workdir}/out")
    job_id = adapter.submit(job(workdir, script), ALICE)
    final = wait_final(adapter, [job_id])[job_id]
    assert (final.state, final.exit_code) == (S.COMPLETED, 0)
    assert final.user == "alice"
    assert cluster.sacct_field(job_id, "User") == "alice"
    alice_uid = pwd.getpwnam("alice").pw_uid
    for name in ("inputs.json", "whoami.txt", "slurm.out", "out", "out/result.txt"):
        assert Path(workdir, name).lstat().st_uid == alice_uid, name
    assert Path(workdir).stat().st_uid == alice_uid
    assert files.read_bytes(f"{workdir}/whoami.txt", 100) == b"alice\n"
    assert files.read_bytes(f"{workdir}/slurm.out", 100) == b'{"n": 1}'
    assert files.is_regular_file(f"{workdir}/out/result.txt")


def test_status_of_many_jobs_is_one_call(
    adapter_under_test: AdapterUnderTest, workdir: str
) -> None:
    adapter = adapter_under_test.adapter
    ids = [
        adapter.submit(job(workdir, f"sleep 2; echo {i}", stdout=f"o{i}"), ALICE) for i in range(8)
    ]
    adapter_under_test.reset_calls()
    got = adapter.statuses(ids)
    assert adapter_under_test.wire_calls() == 1, adapter_under_test.requests
    assert set(got) == set(ids)
    assert all(s.state in (S.PENDING, S.RUNNING, S.COMPLETING, S.COMPLETED) for s in got.values())
    final = wait_final(adapter, ids)
    assert {s.state for s in final.values()} == {S.COMPLETED}


def test_find_by_name(adapter_under_test: AdapterUnderTest, workdir: str) -> None:
    adapter = adapter_under_test.adapter
    spec = job(workdir, "sleep 1")
    job_id = adapter.submit(spec, ALICE)
    found = adapter.find_by_name(spec.name)
    assert [s.job_id for s in found] == [job_id]
    assert adapter.find_by_name(f"never-{uuid.uuid4().hex}") == []
    # the batched lookup of crash recovery: one controller call, one accounting call
    adapter_under_test.reset_calls()
    never = f"never-{uuid.uuid4().hex}"
    many = adapter.find_by_names([spec.name, never], recently())
    assert {n: [s.job_id for s in v] for n, v in many.items()} == {spec.name: [job_id]}
    assert adapter_under_test.wire_calls() <= 2, adapter_under_test.requests
    wait_final(adapter, [job_id])


def test_cancel_pending_and_running_jobs(
    adapter_under_test: AdapterUnderTest, workdir: str, cancel_later: list[str]
) -> None:
    cluster = adapter_under_test.cluster
    adapter = adapter_under_test.adapter
    running = adapter.submit(job(workdir, "sleep 300", stdout="r.out"), ALICE)
    cancel_later.append(running)
    wait_state(adapter, running, S.RUNNING)
    # Asking for every CPU of the node while `running` holds one keeps it pending.
    pending = adapter.submit(
        job(workdir, "sleep 300", cpus=cluster.node_cpus(), stdout="p.out"),
        ALICE,
    )
    cancel_later.append(pending)
    assert adapter.statuses([pending])[pending].state is S.PENDING

    for job_id in (pending, running):
        adapter.cancel(job_id, ALICE)

        def gone(j: str = job_id) -> bool:
            return j not in cluster.squeue_ids()

        wait_for(f"{job_id} to leave squeue", gone, 10)
        final = wait_state(adapter, job_id, S.CANCELLED, timeout=15)
        assert not final.state.active

        # slurmdbd records a never-started job's cancel a moment later: poll.
        def recorded(j: str = job_id) -> bool:
            return cluster.sacct_field(j, "State").startswith("CANCELLED")

        wait_for(f"sacct to record {job_id} as cancelled", recorded, 15)
        adapter.cancel(job_id, ALICE)  # already ended: a no-op


def test_exit_codes_zero_and_non_zero(adapter_under_test: AdapterUnderTest, workdir: str) -> None:
    cluster = adapter_under_test.cluster
    adapter = adapter_under_test.adapter
    ok = adapter.submit(job(workdir, "exit 0", stdout="ok.out"), ALICE)
    bad = adapter.submit(
        job(workdir, "echo oops >&2; exit 3", stdout="b.out", stderr="b.err"), ALICE
    )
    final = wait_final(adapter, [ok, bad])
    assert (final[ok].state, final[ok].exit_code) == (S.COMPLETED, 0)
    assert (final[bad].state, final[bad].exit_code) == (S.FAILED, 3)
    assert cluster.sacct_settled(bad, "ExitCode", "3:0") == "3:0"
    assert adapter.files(ALICE).read_bytes(f"{workdir}/b.err", 100) == b"oops\n"


#: Pairs (ids of ``PAIRS`` in adapters.py) for the slow tests: each cluster once per
#: transport; the pinned older REST dialects parse states exactly as v0.0.42 does.
ONE_PER_TRANSPORT = [
    "slurmrest-hpcgw",
    "slurmrest-mesocentre",
    "ssh-hpcgw",
    "ssh-mesocentre",
    "pyslurm-hpcgw",
]


@pytest.mark.slow
@pytest.mark.parametrize("adapter_under_test", ONE_PER_TRANSPORT, indirect=True)
def test_time_limit_ends_in_timeout(
    adapter_under_test: AdapterUnderTest, workdir: str, cancel_later: list[str]
) -> None:
    cluster = adapter_under_test.cluster
    # Slow (60-100 s): Slurm checks time limits about every 30 s.
    adapter = adapter_under_test.adapter
    spec = JobSpec(
        name="contract-timeout", script="sleep 600", workdir=workdir, time_limit_minutes=1
    )
    job_id = adapter.submit(spec, ALICE)
    cancel_later.append(job_id)
    final = wait_final(adapter, [job_id], timeout=200)[job_id]
    assert final.state is S.TIMEOUT
    assert cluster.sacct_settled(job_id, "State", "TIMEOUT") == "TIMEOUT"


def test_out_of_memory(adapter_under_test: AdapterUnderTest, workdir: str) -> None:
    adapter = adapter_under_test.adapter
    hog = "python3 -c 'import time; b = bytearray(400 * 1024 * 1024); time.sleep(8)'"
    job_id = adapter.submit(job(workdir, hog, memory_mb=64), ALICE)
    final = wait_final(adapter, [job_id])[job_id]
    if final.state is S.COMPLETED:
        pytest.skip("this cluster does not enforce job memory limits (job used 400 MB of 64)")
    # task/cgroup ends it OUT_OF_MEMORY; jobacct_gather OverMemoryKill ends it FAILED (signal 9).
    assert final.state in (S.OUT_OF_MEMORY, S.FAILED)
    assert not final.state.succeeded


def test_job_aged_out_of_the_controller_is_resolved_from_accounting(
    adapter_under_test: AdapterUnderTest, workdir: str
) -> None:
    cluster = adapter_under_test.cluster
    adapter = adapter_under_test.adapter
    spec = job(workdir, "sleep 1")
    job_id = adapter.submit(spec, ALICE)
    wait_final(adapter, [job_id])
    wait_for(
        f"{job_id} to be purged from slurmctld",
        lambda: not cluster.in_controller(job_id),
        180,
        2,
    )
    adapter_under_test.reset_calls()
    status = adapter.statuses([job_id, "67000000"])
    assert set(status) == {job_id}  # the never-known id is simply missing
    assert (status[job_id].state, status[job_id].exit_code) == (S.COMPLETED, 0)
    assert adapter_under_test.wire_calls() == 2, adapter_under_test.requests
    assert adapter.usages([job_id])[job_id].state is S.COMPLETED
    adapter.cancel(job_id, ALICE)  # ended and purged: still a no-op
    # crash recovery finds it by name although only accounting knows it now
    found = adapter.find_by_names([spec.name], recently())
    assert [(s.job_id, s.state) for s in found[spec.name]] == [(job_id, S.COMPLETED)]


def test_usages_of_many_match_sacct(adapter_under_test: AdapterUnderTest, workdir: str) -> None:
    cluster = adapter_under_test.cluster
    adapter = adapter_under_test.adapter
    shapes = [(1, 2), (2, 3), (3, 2), (2, 1)]  # (cpus, seconds)
    ids = [
        adapter.submit(job(workdir, f"sleep {secs}", cpus=cpus, stdout=f"u{i}"), ALICE)
        for i, (cpus, secs) in enumerate(shapes)
    ]
    wait_final(adapter, ids)
    adapter_under_test.reset_calls()
    usages = adapter.usages(ids)
    assert adapter_under_test.wire_calls() == 1, adapter_under_test.requests
    assert set(usages) == set(ids)
    for job_id, (cpus, secs) in zip(ids, shapes, strict=True):
        usage = usages[job_id]
        assert usage.user == "alice" and usage.state is S.COMPLETED
        assert usage.alloc_cpus == cpus == int(cluster.sacct_field(job_id, "AllocCPUS"))
        assert usage.elapsed_seconds == int(cluster.sacct_field(job_id, "ElapsedRaw")) >= secs
        assert usage.cpu_seconds == int(cluster.sacct_field(job_id, "CPUTimeRAW"))
        assert usage.cpu_seconds == usage.alloc_cpus * usage.elapsed_seconds
        assert usage.account == cluster.sacct_field(job_id, "Account")
        assert usage.start_time is not None and usage.end_time is not None


def test_job_is_charged_to_its_account(adapter_under_test: AdapterUnderTest, workdir: str) -> None:
    cluster = adapter_under_test.cluster
    adapter = adapter_under_test.adapter
    job_id = adapter.submit(job(workdir, "true", account="gep"), ALICE)
    wait_final(adapter, [job_id])
    assert cluster.sacct_settled(job_id, "Account", "gep") == "gep"
    assert adapter.usages([job_id])[job_id].account == "gep"
    # alice has no association with hpcgw-ops: Slurm refuses (so the account was passed)
    with pytest.raises(JobRejectedError, match=r"(?i)invalid account"):
        adapter.submit(job(workdir, "true", account="hpcgw-ops"), ALICE)


def test_invalid_partition_is_rejected(adapter_under_test: AdapterUnderTest, workdir: str) -> None:
    with pytest.raises(JobRejectedError, match="partition"):
        adapter_under_test.adapter.submit(job(workdir, "true", partition="no-such-part"), ALICE)


def test_cancel_of_an_unknown_id_is_invalid(adapter_under_test: AdapterUnderTest) -> None:
    with pytest.raises(InvalidJobError):
        adapter_under_test.adapter.cancel("67000000", ALICE)


def test_unknown_ids_are_omitted_not_errors(adapter_under_test: AdapterUnderTest) -> None:
    adapter = adapter_under_test.adapter
    assert adapter.statuses(["67000001"]) == {}
    assert adapter.usages(["67000001"]) == {}


def test_unreachable_site_is_a_transport_error(unreachable_adapter: AdapterUnderTest) -> None:
    adapter = unreachable_adapter.adapter
    spec = JobSpec(name="x", script="true", workdir=f"{WORK_ROOT}/never")
    calls: list[Callable[[], object]] = [
        lambda: adapter.submit(spec, ALICE),
        lambda: adapter.statuses(["1"]),
        lambda: adapter.usages(["1"]),
        lambda: adapter.cancel("1", ALICE),
        adapter.check,
    ]
    for call in calls:
        with pytest.raises(TransportError):
            call()


def test_load_and_associations_are_read_in_few_calls(
    adapter_under_test: AdapterUnderTest, cancel_later: list[str]
) -> None:
    """What routing reads: each partition's CPUs and queued work, who may run there."""
    adapter, cluster = adapter_under_test.adapter, adapter_under_test.cluster
    held = cluster.run(
        "sbatch", "--parsable", "--hold", "-p", cluster.partition, "-n", "1", "-t", "10",
        "-J", f"contract-held-{uuid.uuid4().hex[:8]}", "--wrap", "sleep 1",
    ).stdout.strip().split(";")[0]  # fmt: skip
    cancel_later.append(held)
    adapter_under_test.reset_calls()
    load = adapter.load()
    associations = adapter.associations()
    if adapter_under_test.kind == "pyslurm":  # not read through pyslurm: routing says unknown
        assert (load.partitions, associations) == ({}, {})
        return
    assert adapter_under_test.wire_calls() <= 3, adapter_under_test.requests
    partition = load.partitions[cluster.partition]
    assert partition.total_cpus == cluster.node_cpus()
    assert partition.pending_jobs >= 1
    assert partition.pending_cpu_seconds >= 600  # the held job: 1 CPU x 10 min
    assert "gep" in associations["alice"]
