"""The EXPERIMENTAL pyslurm adapter's translation and error logic, with plain objects
standing in for pyslurm; the real library runs in the contract suite
(tests/integration/adapters.py) once deploy/install-pyslurm.sh has built it."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from hpc_adapters.base import HpcIdentity, JobSpec, SchedulerState
from hpc_adapters.errors import (
    AuthenticationError,
    InvalidJobError,
    JobRejectedError,
    SchedulerBusyError,
    TransportError,
)
from hpc_adapters.pyslurm_adapter import (
    PyslurmAdapter,
    PyslurmUnavailable,
    job_description,
    job_status,
    job_usage,
    load_pyslurm,
)

pytestmark = pytest.mark.unit
S = SchedulerState
ALICE = HpcIdentity("alice")


def passwd(login: str) -> Any:
    if login != "alice":
        raise KeyError(login)
    return SimpleNamespace(pw_uid=1001, pw_gid=1001)


def test_missing_pyslurm_is_a_clear_transport_error() -> None:
    with pytest.raises(PyslurmUnavailable, match=r"install-pyslurm\.sh builds it") as info:
        load_pyslurm("pyslurm_that_is_not_installed")
    assert isinstance(info.value, TransportError)


def test_job_description() -> None:
    spec = JobSpec(
        name="hpcgw-1",
        script="echo hi",
        workdir="/w/1",
        cpus=4,
        memory_mb=2048,
        time_limit_minutes=30,
        partition="long",
        account="gep",
        environment={"X": "1"},
    )
    desc = job_description(spec, "alice", {"PATH": "/bin"}, passwd)
    assert desc == {
        "name": "hpcgw-1",
        "script": "#!/bin/bash\necho hi\n",
        "working_directory": "/w/1",
        "standard_output": "/w/1/slurm.out",
        "standard_error": "/w/1/slurm.err",
        "ntasks": 1,
        "nodes": 1,
        "cpus_per_task": 4,
        "memory_per_node": "2048M",
        "time_limit": 30,
        "is_requeueable": False,
        "environment": {"HOME": "/w/1", "PATH": "/bin", "X": "1"},
        "user_id": 1001,
        "group_id": 1001,
        "partitions": "long",
        "account": "gep",
    }
    with pytest.raises(AuthenticationError, match="no such user"):
        job_description(spec, "mallory", {}, passwd)
    with pytest.raises(JobRejectedError, match="not inside"):
        job_description(JobSpec("j", "true", "/w", stdout="/etc/x"), "alice", {}, passwd)
    with pytest.raises(JobRejectedError, match="not a Slurm account name"):
        job_description(JobSpec("j", "true", "/w", account="gep,root"), "alice", {}, passwd)


@pytest.mark.parametrize(
    ("fields", "state", "exit_code", "signal"),
    [
        ({"state": "RUNNING", "exit_code": 0}, S.RUNNING, None, None),
        ({"state": "COMPLETED", "exit_code": 0}, S.COMPLETED, 0, None),
        ({"state": "FAILED", "exit_code": 3, "exit_code_signal": 0}, S.FAILED, 3, None),
        ({"state": "CANCELLED", "exit_code": 0, "exit_code_signal": 15}, S.CANCELLED, None, 15),
        ({"state": "OUT_OF_MEMORY", "exit_code_signal": 125}, S.OUT_OF_MEMORY, None, 125),
        ({"state": "BRAND_NEW_STATE"}, S.UNKNOWN, None, None),
        ({"state": None}, S.UNKNOWN, None, None),
    ],
)
def test_job_status(
    fields: dict[str, Any], state: SchedulerState, exit_code: int | None, signal: int | None
) -> None:
    job = SimpleNamespace(id=7, name="n", user_name="alice", submit_time=1795291657, **fields)
    status = job_status(job)
    assert (status.job_id, status.state, status.exit_code, status.signal) == (
        "7",
        state,
        exit_code,
        signal,
    )
    assert status.submit_time == datetime.fromtimestamp(1795291657, tz=UTC)
    assert status.state.active == (state in (S.RUNNING, S.UNKNOWN))


def test_job_usage() -> None:
    stats = SimpleNamespace(total_cpu_time=12, max_resident_memory=1048576)
    job = SimpleNamespace(
        id=8,
        state="COMPLETED",
        exit_code=0,
        user_name="alice",
        account="gep",
        partition="debug",
        cpus=2,
        elapsed_time=30,
        stats=stats,
        start_time=datetime(2026, 1, 1, 12, 0),
        end_time=1795291700,
    )
    usage = job_usage(job)
    assert (usage.job_id, usage.user, usage.alloc_cpus, usage.cpu_seconds) == ("8", "alice", 2, 60)
    assert usage.total_cpu_seconds == 12.0 and usage.max_rss_bytes == 1048576
    assert usage.start_time == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert usage.core_hours == pytest.approx(60 / 3600)


class RPCError(Exception):
    def __init__(self, msg: str, errno: int) -> None:
        super().__init__(msg)
        self.errno = errno


def fake_pyslurm(live: list[Any], db: list[Any], submit: Any = 99) -> Any:
    """A module-like object with the pyslurm >= 23 calls the adapter uses."""
    submitted: list[dict[str, Any]] = []
    cancelled: list[int] = []

    class Desc:
        def __init__(self, **kw: Any) -> None:
            submitted.append(kw)

        def submit(self) -> int:
            if isinstance(submit, Exception):
                raise submit
            return int(submit)

    class Job:
        def __init__(self, job_id: int) -> None:
            self.job_id = job_id

        def cancel(self) -> None:
            cancelled.append(self.job_id)

    def load_db(filt: Any) -> dict[int, Any]:
        if filt.names is not None:
            return {j.id: j for j in db if getattr(j, "name", None) in filt.names}
        return {j.id: j for j in db if j.id in filt.ids}

    def job_filter(ids: Any = None, names: Any = None, start_time: Any = None) -> Any:
        return SimpleNamespace(ids=ids or [], names=names, start_time=start_time)

    return SimpleNamespace(
        __version__="25.11.0",
        slurm_api_version=lambda: (25, 11, 1),
        RPCError=RPCError,
        JobSubmitDescription=Desc,
        Job=Job,
        Jobs=SimpleNamespace(load=lambda: {j.id: j for j in live}),
        db=SimpleNamespace(JobFilter=job_filter, Jobs=SimpleNamespace(load=load_db)),
        submitted=submitted,
        cancelled=cancelled,
    )


def adapter(module: Any, calls: list[str] | None = None) -> PyslurmAdapter:
    return PyslurmAdapter(
        "p",
        lambda identity: None,  # type: ignore[arg-type,return-value]
        module=module,
        getpwnam=passwd,
        on_call=None if calls is None else calls.append,
    )


def test_adapter_submit_status_cancel_usage() -> None:
    live = [
        SimpleNamespace(id=1, state="RUNNING", name="a", user_name="alice"),
        SimpleNamespace(id=2, state="PENDING", user_name="bob"),
    ]
    db = [SimpleNamespace(id=3, state="COMPLETED", exit_code=0, cpus=1, elapsed_time=5, name="c")]
    slurm = fake_pyslurm(live, db)
    calls: list[str] = []
    pys = adapter(slurm, calls)
    assert pys.submit(JobSpec("j", "true", "/w"), ALICE) == "99"
    assert slurm.submitted[0]["user_id"] == 1001
    assert calls == ["submit"]
    calls.clear()
    got = pys.statuses(["1", "2", "3", "4", "x"])
    assert calls == ["jobs", "db.jobs"]  # one controller call, one accounting call
    assert {k: v.state for k, v in got.items()} == {
        "1": S.RUNNING,
        "2": S.PENDING,
        "3": S.COMPLETED,
    }
    assert [s.job_id for s in pys.find_by_name("a")] == ["1"]
    calls.clear()
    found = pys.find_by_names(["a", "c", "never"], datetime(2026, 1, 1, tzinfo=UTC))
    assert {n: [s.job_id for s in v] for n, v in found.items()} == {"a": ["1"], "c": ["3"]}
    assert calls == ["jobs", "db.jobs"]  # live first, accounting only for the rest
    pys.cancel("1", ALICE)
    assert slurm.cancelled == [1]
    with pytest.raises(AuthenticationError, match="does not belong to alice"):
        pys.cancel("2", ALICE)  # bob's: the process could, the adapter must not
    pys.cancel("3", ALICE)  # ended and purged: no-op
    with pytest.raises(InvalidJobError):
        pys.cancel("4", ALICE)  # pyslurm would hide this: the adapter asks first
    assert slurm.cancelled == [1]
    assert set(pys.usages(["3", "4"])) == {"3"}
    facts = pys.check()
    assert (facts["pyslurm_version"], facts["slurm_release"]) == ("25.11.0", "25.11.1")


def test_adapter_error_mapping() -> None:
    refused = adapter(fake_pyslurm([], [], submit=RPCError("Invalid partition name", 2000)))
    with pytest.raises(JobRejectedError, match="Invalid partition"):
        refused.submit(JobSpec("j", "true", "/w"), ALICE)
    denied = adapter(fake_pyslurm([], [], submit=RPCError("Access/permission denied", 2002)))
    with pytest.raises(AuthenticationError):
        denied.submit(JobSpec("j", "true", "/w"), ALICE)
    down = fake_pyslurm([], [])

    def boom() -> dict[int, Any]:
        raise RPCError("Unable to contact slurm controller", 1001)

    down.Jobs = SimpleNamespace(load=boom)
    with pytest.raises(TransportError, match="cannot reach Slurm"):
        adapter(down).statuses(["1"])
    unreachable = adapter(fake_pyslurm([], [], submit=RPCError("Unable to contact", 1800)))
    with pytest.raises(TransportError):  # transient: the job is retried, not failed
        unreachable.submit(JobSpec("j", "true", "/w"), ALICE)
    standby = adapter(fake_pyslurm([], [], submit=RPCError("in standby mode", 2027)))
    with pytest.raises(SchedulerBusyError):
        standby.submit(JobSpec("j", "true", "/w"), ALICE)
    account = adapter(fake_pyslurm([], [], submit=RPCError("Invalid account", 2045)))
    with pytest.raises(JobRejectedError, match="Invalid account"):
        account.submit(JobSpec("j", "true", "/w", account="ops"), ALICE)
    db_down = fake_pyslurm([], [])

    def db_boom(filt: Any) -> dict[int, Any]:
        raise RPCError("Unable to connect to database", 7000)

    db_down.db.Jobs = SimpleNamespace(load=db_boom)
    with pytest.raises(SchedulerBusyError):
        adapter(db_down).usages(["1"])
