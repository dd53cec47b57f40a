"""The Slurm dialect: state table, script rendering, and slurmrestd v0.0.38 parsing.

Fixtures under ``fixtures/slurmrest/`` are trimmed real responses of the dev
cluster's slurmrestd (Slurm 22.05.8); the adapter tests at the end swap the
wire with ``httpx.MockTransport`` and replay them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from hpc_adapters.base import HpcIdentity, JobSpec, SchedulerState
from hpc_adapters.errors import (
    AuthenticationError,
    InvalidJobError,
    JobRejectedError,
    SchedulerBusyError,
    TransportError,
)
from hpc_adapters.slurm.dialects import V0038Dialect, dialect_for, epoch, wait_status
from hpc_adapters.slurm.script import output_paths, render_batch_script, sbatch_options
from hpc_adapters.slurm.states import parse_state
from hpc_adapters.slurmrest import ForwardedTokenSource, MintingTokenSource, SlurmRestAdapter

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "slurmrest"
S = SchedulerState
D = V0038Dialect()


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"v0038_{name}.json").read_text())
    return data


def spec(**kw: Any) -> JobSpec:
    base: dict[str, Any] = {"name": "hpcgw-1", "script": "echo hi\n", "workdir": "/w/j1"}
    base.update(kw)
    return JobSpec(**base)


# ---------------------------------------------------------------- states ----


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("PENDING", S.PENDING),
        ("PD", S.PENDING),
        ("REQUEUED", S.PENDING),
        ("CONFIGURING", S.PENDING),
        ("RUNNING", S.RUNNING),
        ("SUSPENDED", S.SUSPENDED),
        ("COMPLETING", S.COMPLETING),
        ("COMPLETED", S.COMPLETED),
        ("CD", S.COMPLETED),
        ("FAILED", S.FAILED),
        ("CANCELLED by 1001", S.CANCELLED),
        ("CANCELLED+", S.CANCELLED),
        ("TIMEOUT", S.TIMEOUT),
        ("OUT_OF_MEMORY", S.OUT_OF_MEMORY),
        ("OOM", S.OUT_OF_MEMORY),
        ("NODE_FAIL", S.NODE_FAIL),
        ("PREEMPTED", S.PREEMPTED),
        ("BOOT_FAIL", S.BOOT_FAIL),
        ("DEADLINE", S.DEADLINE),
        ("completed", S.COMPLETED),
        (["RUNNING", "COMPLETING"], S.COMPLETING),  # v0.0.40+ flag lists
        (["COMPLETED", "COMPLETING"], S.COMPLETING),
        (["PENDING", "REQUEUE_HOLD"], S.PENDING),
        ("COMPLETED,COMPLETING", S.COMPLETING),
    ],
)
def test_state_table(raw: str | list[str], expected: SchedulerState) -> None:
    assert parse_state(raw) is expected


@pytest.mark.parametrize("raw", ["WIBBLE", "", None, []])
def test_unknown_state_is_unknown_active_and_warned(
    raw: str | list[str] | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="hpc_adapters.slurm.states"):
        state = parse_state(raw)
    assert state is S.UNKNOWN
    assert state.active and not state.succeeded
    assert "UNKNOWN" in caplog.text


# ---------------------------------------------------------------- script ----


def test_script_gets_a_bash_shebang_and_body_verbatim() -> None:
    body = 'python3 run.py "$(cat x)"'
    assert render_batch_script(spec(script=body)) == f"#!/bin/bash\n{body}\n"
    assert render_batch_script(spec(script="#!/bin/sh\ntrue\n")) == "#!/bin/sh\ntrue\n"


def test_output_paths_are_absolute_and_inside_the_workdir() -> None:
    assert output_paths(spec()) == ("/w/j1/slurm.out", "/w/j1/slurm.err")
    assert output_paths(spec(stdout="/w/j1/o", stderr="logs/e")) == ("/w/j1/o", "/w/j1/logs/e")
    for bad in ("../x", "/etc/x", "."):
        with pytest.raises(ValueError):
            output_paths(spec(stdout=bad))
    with pytest.raises(ValueError):
        output_paths(spec(workdir="relative"))


def test_sbatch_options_quote_every_value() -> None:
    opts = sbatch_options(spec(name="a b;rm -rf /", partition="debug"))
    assert "--job-name='a b;rm -rf /'" in opts
    assert "--partition=debug" in opts
    assert "--mem=512M" in opts


# ------------------------------------------------------------- registry ----


def test_dialect_registry() -> None:
    assert isinstance(dialect_for("v0.0.38"), V0038Dialect)
    assert isinstance(dialect_for("0.0.38"), V0038Dialect)
    with pytest.raises(ValueError, match=r"unsupported .*v0\.0\.99.*v0\.0\.38"):
        dialect_for("v0.0.99")


def test_paths() -> None:
    assert D.jobs_path() == "/slurm/v0.0.38/jobs"
    assert D.db_jobs_path() == "/slurmdb/v0.0.38/jobs"
    assert D.job_path("42") == "/slurm/v0.0.38/job/42"
    with pytest.raises(ValueError):
        D.job_path("42/../../x")


# -------------------------------------------------------------- requests ----


def test_submit_body() -> None:
    body = D.submit_body(
        spec(cpus=2, memory_mb=100, time_limit_minutes=3, partition="debug", account="gep"),
        {"PATH": "/bin", "HOME": "/w/j1"},
    )
    assert body["script"] == "#!/bin/bash\necho hi\n"
    job = body["job"]
    assert job["name"] == "hpcgw-1"
    assert job["current_working_directory"] == "/w/j1"
    assert job["standard_output"] == "/w/j1/slurm.out"
    assert job["standard_error"] == "/w/j1/slurm.err"
    assert (job["cpus_per_task"], job["memory_per_node"], job["time_limit"]) == (2, 100, 3)
    assert (job["partition"], job["account"]) == ("debug", "gep")
    assert job["environment"] == {"PATH": "/bin", "HOME": "/w/j1"}
    assert "partition" not in D.submit_body(spec(), {"PATH": "/bin"})["job"]


@pytest.mark.parametrize("account", ["gep,root", "gep ops", "-A", "gep\n", "g'p"])
def test_account_that_is_not_one_slurm_name_is_refused(account: str) -> None:
    with pytest.raises(ValueError, match="not a Slurm account name"):
        D.submit_body(spec(account=account), {"PATH": "/bin"})
    with pytest.raises(ValueError, match="not a Slurm account name"):
        sbatch_options(spec(account=account))


def test_no_account_leaves_the_users_default() -> None:
    assert "account" not in D.submit_body(spec(), {"PATH": "/bin"})["job"]
    assert "account" not in D.submit_body(spec(account=""), {"PATH": "/bin"})["job"]
    assert not any(o.startswith("--account") for o in sbatch_options(spec()))
    assert "--account=hpcgw-ops" in sbatch_options(spec(account="hpcgw-ops"))


def test_db_query_encodes_commas_and_refuses_bad_ids() -> None:
    # A raw comma answers 400, and a non-numeric id kills slurmrestd 22.05.
    assert D.db_jobs_query(["9", "10"]) == "step=9%2C10"
    for bad in (["abc"], ["1", "2.batch"], []):
        with pytest.raises(ValueError):
            D.db_jobs_query(bad)


# -------------------------------------------------------------- responses ----


def test_submit_responses() -> None:
    ok = D.parse_submit(fixture("submit_ok"))
    assert ok.job_id == "37" and ok.errors == ()
    held = D.parse_submit(fixture("submit_held"))
    assert held.job_id == "36" and held.errors[0].code == 2042
    bad = D.parse_submit(fixture("submit_bad_partition"))
    assert bad.job_id is None
    assert bad.errors[0].code == 2000
    assert "Invalid partition" in bad.errors[0].message
    noenv = D.parse_submit(fixture("submit_no_environment"))
    assert [e.code for e in noenv.errors] == [2127, 9001]


def test_error_entries_use_number_or_code_and_description() -> None:
    errors = D.parse_errors(fixture("cancel_invalid_job"))
    assert errors[0].code == 2017
    assert "Invalid job id specified" in errors[0].message
    assert "unable to kill JobId=999999" in errors[0].message


def live_jobs() -> dict[str, Any]:
    return {s.job_id: s for s in D.parse_jobs(fixture("jobs"))}


def test_live_jobs_states_and_exit_codes() -> None:
    jobs = live_jobs()
    ok, fail, sig = jobs["30"], jobs["31"], jobs["41"]
    assert (ok.state, ok.exit_code, ok.signal, ok.reason) == (S.COMPLETED, 0, None, None)
    assert ok.name == "smoke-ok" and ok.user == "alice"
    assert ok.end_time == datetime(2026, 11, 21, 19, 53, 36, tzinfo=UTC)
    assert (fail.state, fail.exit_code, fail.reason) == (S.FAILED, 3, "NonZeroExitCode")
    assert (sig.state, sig.exit_code, sig.signal) == (S.FAILED, None, 9)
    assert jobs["57"].exit_code == 126
    assert (jobs["43"].state, jobs["43"].signal) == (S.OUT_OF_MEMORY, 125)  # sacct: 0:125
    assert (jobs["56"].state, jobs["56"].reason) == (S.TIMEOUT, "TimeLimit")
    assert jobs["42"].state is S.CANCELLED


def test_live_jobs_ignore_projected_times() -> None:
    jobs = live_jobs()
    running, held, requeued = jobs["35"], jobs["36"], jobs["37"]
    assert running.state is S.RUNNING
    assert running.start_time is not None and running.end_time is None  # end is a projection
    assert running.exit_code is None
    assert (held.state, held.reason, held.start_time) == (S.PENDING, "JobHeldUser", None)
    assert (requeued.state, requeued.reason) == (S.PENDING, "BeginTime")
    assert requeued.start_time is None  # a future, expected start


def accounting() -> dict[str, Any]:
    return {r.status.job_id: r for r in D.parse_db_jobs(fixture("db_jobs"))}


def test_accounting_states_and_exit_codes() -> None:
    recs = accounting()
    assert recs["20"].status.state is S.COMPLETED and recs["20"].status.exit_code == 0
    # 22.05 reports every normal exit as SUCCESS/0: a FAILED job's code is unknown.
    assert recs["38"].status.state is S.FAILED and recs["38"].status.exit_code is None
    assert (recs["39"].status.exit_code, recs["39"].status.signal) == (None, 9)
    assert recs["43"].status.state is S.OUT_OF_MEMORY
    assert (recs["35"].status.state, recs["35"].status.signal) == (S.TIMEOUT, 15)
    assert recs["13"].status.reason == "PartitionTimeLimit"


def test_requeued_job_collapses_to_its_latest_record() -> None:
    recs = accounting()
    assert recs["37"].status.state is S.PENDING
    assert recs["37"].status.reason == "BeginTime"


def test_usage_matches_sacct() -> None:
    # sacct -j 40: AllocCPUS=2 Elapsed=6 CPUTimeRAW=12, MaxRSS of 40.batch in the steps.
    usage = accounting()["40"].usage
    assert (usage.alloc_cpus, usage.elapsed_seconds, usage.cpu_seconds) == (2, 6, 12)
    assert usage.core_hours == pytest.approx(12 / 3600)
    assert (usage.user, usage.account, usage.partition) == ("alice", "gep", "debug")
    assert usage.billing == 2
    assert usage.max_rss_bytes is not None and usage.max_rss_bytes > 150 * 1024 * 1024
    assert usage.total_cpu_seconds is not None and usage.total_cpu_seconds > 0
    assert usage.start_time is not None and usage.end_time is not None
    assert (usage.end_time - usage.start_time).total_seconds() == 6


def test_usage_of_a_job_that_never_ran() -> None:
    usage = accounting()["42"].usage
    assert usage.state is S.CANCELLED
    assert (usage.alloc_cpus, usage.elapsed_seconds, usage.cpu_seconds) == (0, 0, 0)
    assert usage.start_time is None and usage.max_rss_bytes is None


def test_ping() -> None:
    facts = D.parse_ping(fixture("ping"))
    assert facts["slurm_release"] == "22.05.8"
    assert facts["dialect"] == "v0.0.38"
    assert any(v.startswith("UP") for k, v in facts.items() if k.startswith("controller."))


def test_wait_status_and_epoch() -> None:
    assert wait_status(0) == (0, None)
    assert wait_status(768) == (3, None)
    assert wait_status(9) == (None, 9)
    assert wait_status(None) == (None, None)
    assert wait_status(0xFFFFFFFE) == (None, None)
    assert epoch(0) is None and epoch(None) is None and epoch(True) is None
    assert epoch(1) == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)


# ---------------------------------------------------- tokens and transport ----


def test_minting_token_source_caches_until_near_expiry(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_bytes(b"k" * 32)
    now = [1000.0]
    src = MintingTokenSource(str(key), lifespan=300, renew_before=60, clock=lambda: now[0])
    first = src.token_for(HpcIdentity("alice"))
    claims = jwt.decode(first, b"k" * 32, algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {"sun": "alice", "iat": 1000, "exp": 1300}
    now[0] = 1200
    assert src.token_for(HpcIdentity("alice")) == first
    now[0] = 1241
    assert src.token_for(HpcIdentity("alice")) != first
    assert src.token_for(HpcIdentity("bob")) != first
    with pytest.raises(AuthenticationError):
        src.token_for(HpcIdentity("alice\nX-Evil: 1"))
    with pytest.raises(AuthenticationError):
        MintingTokenSource(str(tmp_path / "missing"))


def test_forwarded_token_source() -> None:
    assert ForwardedTokenSource().token_for(HpcIdentity("alice", token="tok")) == "tok"
    with pytest.raises(AuthenticationError):
        ForwardedTokenSource().token_for(HpcIdentity("alice"))

    class Fixed:
        def token_for(self, identity: HpcIdentity) -> str:
            return "minted"

    assert ForwardedTokenSource(Fixed()).token_for(HpcIdentity("alice")) == "minted"


Handler = Callable[[httpx.Request], httpx.Response]


def adapter(handler: Handler) -> SlurmRestAdapter:
    class Fixed:
        def token_for(self, identity: HpcIdentity) -> str:
            return f"token-of-{identity.login}"

    return SlurmRestAdapter(
        "test",
        "http://slurm.test",
        "v0.0.38",
        Fixed(),
        "hpcgw",
        lambda identity: pytest.fail("no files here"),
        transport=httpx.MockTransport(handler),
    )


def replay(routes: dict[str, tuple[int, str]], seen: list[httpx.Request]) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, name = routes[f"{request.method} {request.url.path}"]
        return httpx.Response(status, json=fixture(name))

    return handle


def test_statuses_is_one_call_when_all_jobs_are_live() -> None:
    seen: list[httpx.Request] = []
    a = adapter(replay({"GET /slurm/v0.0.38/jobs": (200, "jobs")}, seen))
    got = a.statuses(["30", "31", "35", "30", "not-an-id"])
    assert set(got) == {"30", "31", "35"}
    assert len(seen) == 1
    assert seen[0].headers["X-SLURM-USER-NAME"] == "hpcgw"
    assert seen[0].headers["X-SLURM-USER-TOKEN"] == "token-of-hpcgw"


def test_statuses_resolves_aged_out_jobs_with_one_accounting_call() -> None:
    seen: list[httpx.Request] = []
    routes = {
        "GET /slurm/v0.0.38/jobs": (200, "jobs"),
        "GET /slurmdb/v0.0.38/jobs": (200, "db_jobs"),
    }
    got = adapter(replay(routes, seen)).statuses(["30", "20", "22", "99999"])
    assert set(got) == {"30", "20", "22"}
    assert (got["20"].state, got["22"].state) == (S.COMPLETED, S.TIMEOUT)
    assert len(seen) == 2
    assert seen[1].url.query == b"step=20%2C22%2C99999"


def test_submit_maps_outcomes() -> None:
    seen: list[httpx.Request] = []
    a = adapter(replay({"POST /slurm/v0.0.38/job/submit": (200, "submit_ok")}, seen))
    assert a.submit(spec(environment={"FOO": "1"}), HpcIdentity("alice")) == "37"
    body = json.loads(seen[0].content)
    assert body["job"]["environment"]["FOO"] == "1"
    assert body["job"]["environment"]["HOME"] == "/w/j1"
    assert "PATH" in body["job"]["environment"]
    assert seen[0].headers["X-SLURM-USER-NAME"] == "alice"

    cases = {
        "submit_bad_partition": JobRejectedError,
        "submit_no_environment": JobRejectedError,
        "submit_token_refused": SchedulerBusyError,
    }
    for name, exc in cases.items():
        a = adapter(replay({"POST /slurm/v0.0.38/job/submit": (500, name)}, []))
        with pytest.raises(exc):
            a.submit(spec(), HpcIdentity("alice"))
    with pytest.raises(JobRejectedError):
        adapter(replay({}, [])).submit(spec(environment={"A B": "x"}), HpcIdentity("alice"))
    with pytest.raises(JobRejectedError):
        adapter(replay({}, [])).submit(spec(stdout="../escape"), HpcIdentity("alice"))


def test_cancel_semantics() -> None:
    ok = {"DELETE /slurm/v0.0.38/job/36": (200, "cancel_ok")}
    adapter(replay(ok, [])).cancel("36", HpcIdentity("alice"))

    purged = {
        "DELETE /slurm/v0.0.38/job/20": (500, "cancel_invalid_job"),
        "GET /slurmdb/v0.0.38/jobs": (200, "db_jobs"),
    }
    adapter(replay(purged, [])).cancel("20", HpcIdentity("alice"))  # ended long ago: no-op

    unknown = {
        "DELETE /slurm/v0.0.38/job/999999": (500, "cancel_invalid_job"),
        "GET /slurmdb/v0.0.38/jobs": (200, "db_nothing_found"),
    }
    with pytest.raises(InvalidJobError):
        adapter(replay(unknown, [])).cancel("999999", HpcIdentity("alice"))
    with pytest.raises(InvalidJobError):
        adapter(replay({}, [])).cancel("1;2", HpcIdentity("alice"))

    denied = {"DELETE /slurm/v0.0.38/job/36": (500, "cancel_denied")}
    with pytest.raises(AuthenticationError):
        adapter(replay(denied, [])).cancel("36", HpcIdentity("bob"))


def test_transport_failures_map_to_the_error_tree() -> None:
    def raising(exc: Exception) -> Handler:
        def handle(request: httpx.Request) -> httpx.Response:
            raise exc

        return handle

    with pytest.raises(TransportError):
        adapter(raising(httpx.ConnectError("refused"))).statuses(["1"])
    with pytest.raises(TransportError):
        adapter(raising(httpx.ReadTimeout("slow"))).usages(["1"])

    def status(code: int, text: str = "") -> Handler:
        return lambda request: httpx.Response(code, text=text)

    with pytest.raises(AuthenticationError):
        adapter(status(401, "Authentication failure")).statuses(["1"])
    for code in (502, 503, 504):
        with pytest.raises(SchedulerBusyError):
            adapter(status(code)).statuses(["1"])
    with pytest.raises(TransportError):
        adapter(status(400, "Unable to parse query.")).usages(["1"])

    with pytest.raises(SchedulerBusyError):
        adapter(replay({"GET /slurm/v0.0.38/jobs": (500, "jobs_token_refused")}, [])).statuses(
            ["1"]
        )
    with pytest.raises(AuthenticationError):
        adapter(replay({"GET /slurmdb/v0.0.38/jobs": (200, "db_token_refused")}, [])).usages(["1"])


def test_usages_nothing_found_is_empty_and_no_ids_no_call() -> None:
    seen: list[httpx.Request] = []
    a = adapter(replay({"GET /slurmdb/v0.0.38/jobs": (200, "db_nothing_found")}, seen))
    assert a.usages(["999999"]) == {}
    assert a.usages([]) == {} and a.statuses([]) == {}
    assert len(seen) == 1
