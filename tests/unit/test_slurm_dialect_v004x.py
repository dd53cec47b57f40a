"""slurmrestd v0.0.40-v0.0.42 (Slurm 24.11): requests, parsing, version choice, adapter wiring.

Fixtures ``fixtures/slurmrest/v0042_*.json`` are real answers of the dev
``mesocentre`` cluster's slurmrestd (Slurm 24.11.5), trimmed of ``meta``; the
sacct figures quoted in the tests were read from the same cluster for the same
jobs. The adapter tests swap the wire with ``httpx.MockTransport``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from hpc_adapters.base import HpcIdentity, JobSpec, SchedulerState, WorkspaceFiles
from hpc_adapters.errors import AuthenticationError, InvalidJobError, UnsupportedApiError
from hpc_adapters.slurm.dialects import (
    V0040Dialect,
    V0041Dialect,
    V0042Dialect,
    choose_version,
    dialect_for,
    offered_versions,
    supported_versions,
)
from hpc_adapters.slurm.v004x import exit_of, number
from hpc_adapters.slurmrest import SlurmRestAdapter

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "slurmrest"
S = SchedulerState
D = V0042Dialect()


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"v0042_{name}.json").read_text())
    return data


def spec(**kw: Any) -> JobSpec:
    base: dict[str, Any] = {"name": "hpcgw-1", "script": "echo hi\n", "workdir": "/w/j1"}
    base.update(kw)
    return JobSpec(**base)


# ------------------------------------------------------------- versions ----


def test_registry_knows_every_24_11_version_and_picks_the_newest() -> None:
    assert supported_versions() == ["v0.0.38", "v0.0.40", "v0.0.41", "v0.0.42"]
    for cls in (V0040Dialect, V0041Dialect, V0042Dialect):
        assert type(dialect_for(cls.version)) is cls
    offered = offered_versions(fixture("openapi_paths"))
    assert offered == ["v0.0.40", "v0.0.41", "v0.0.42"]  # what 24.11 serves: no v0.0.38
    assert choose_version(offered) == "v0.0.42"
    assert choose_version(["v0.0.36", "v0.0.37", "v0.0.38"]) == "v0.0.38"  # 22.05
    assert choose_version(["v0.0.37", "v0.0.43"]) is None


# -------------------------------------------------------------- requests ----


def test_submit_body_puts_the_script_in_the_job_and_sets_structs() -> None:
    body = D.submit_body(
        spec(cpus=2, memory_mb=100, time_limit_minutes=3, partition="short", account="gep"),
        {"PATH": "/bin", "HOME": "/w/j1"},
    )
    assert set(body) == {"job"}  # top-level "script" is deprecated from v0.0.41
    job = body["job"]
    assert job["script"] == "#!/bin/bash\necho hi\n"
    assert job["environment"] == ["PATH=/bin", "HOME=/w/j1"]
    assert job["memory_per_node"] == {"set": True, "infinite": False, "number": 100}
    assert job["time_limit"] == {"set": True, "infinite": False, "number": 3}
    assert (job["nodes"], job["tasks"], job["cpus_per_task"]) == ("1", 1, 2)
    assert (job["partition"], job["account"]) == ("short", "gep")
    assert "partition" not in D.submit_body(spec(), {"PATH": "/bin"})["job"]


def test_db_query_is_one_step_parameter_per_id() -> None:
    # A comma, raw or percent-encoded, answers 400/422 on 24.11.
    assert D.db_jobs_query(["9", "10"]) == "step=9&step=10"
    for bad in (["abc"], ["1", "2.batch"], [], ["1&users=root"]):
        with pytest.raises(ValueError):
            D.db_jobs_query(bad)


def test_update_time_is_epoch_for_v0042_and_relative_for_v0040_and_v0041() -> None:
    assert D.update_time_query(1_000, 1_005.2) == "update_time=1000"
    for older in (V0040Dialect(), V0041Dialect()):
        assert older.update_time_query(1_000, 1_005.2) == "update_time=now-6"
        assert older.update_time_query(1_000, 999.0) == "update_time=now-1"


# -------------------------------------------------------------- responses ----


def test_structs_and_exit_codes() -> None:
    assert number({"set": True, "infinite": False, "number": 7}) == 7
    assert number({"set": False, "infinite": False, "number": 0}) is None
    assert number({"set": True, "infinite": True, "number": 0}) is None
    assert number(4294967294) is None and number(12) == 12
    error = {"status": ["ERROR"], "return_code": {"set": True, "number": 3}}
    assert exit_of(error) == (3, None)
    signalled = {"status": ["SIGNALED"], "signal": {"id": {"set": True, "number": 9}}}
    assert exit_of(signalled) == (None, 9)
    ok = {"status": ["SUCCESS"], "return_code": {"set": True, "number": 0}}
    assert exit_of(ok) == (0, None)
    assert exit_of(ok, S.FAILED) == (None, None)  # a failed job's 0 is not believed
    assert exit_of({}) == (None, None)


def test_submit_answers() -> None:
    assert D.parse_submit(fixture("submit_ok")).job_id == "80"
    held = D.parse_submit(fixture("submit_held"))
    assert held.job_id == "85" and held.errors == ()  # the hold is only a warning
    bad = D.parse_submit(fixture("submit_bad_partition"))
    assert bad.job_id is None and bad.errors[0].code == 2000
    assert "Invalid partition name" in bad.errors[0].message


def test_live_jobs() -> None:
    jobs = {s.job_id: s for s in D.parse_jobs(fixture("jobs"))}
    running, held = jobs["84"], jobs["85"]
    assert (running.state, running.user, running.name) == (S.RUNNING, "alice", "fx-running")
    assert running.start_time is not None and running.end_time is None  # end is projected
    assert running.exit_code is None
    assert (held.state, held.reason, held.start_time) == (S.PENDING, "JobHeldUser", None)


def test_unchanged_list_is_recognised() -> None:
    assert D.not_modified(200, fixture("jobs_unchanged"))
    assert not D.not_modified(200, fixture("jobs"))
    assert not D.not_modified(200, {"jobs": [], "warnings": []})  # really no jobs
    assert D.not_modified(304, {})


def test_accounting_matches_sacct() -> None:
    recs = {r.status.job_id: r for r in D.parse_db_jobs(fixture("db_jobs"))}
    # sacct -X -o JobID,AllocCPUS,ElapsedRaw,CPUTimeRAW,State,ExitCode on mesocentre:
    # 80|2|2|4|COMPLETED|0:0  81|1|1|1|FAILED|3:0  82|1|1|1|FAILED|0:9  86|..|CANCELLED|0:0
    ok = recs["80"]
    assert (ok.status.state, ok.status.exit_code) == (S.COMPLETED, 0)
    assert (ok.usage.alloc_cpus, ok.usage.elapsed_seconds, ok.usage.cpu_seconds) == (2, 2, 4)
    assert (ok.usage.user, ok.usage.account, ok.usage.partition) == ("alice", "gep", "short")
    assert ok.usage.billing == 2
    assert ok.usage.max_rss_bytes is not None and ok.usage.max_rss_bytes > 1024 * 1024
    assert ok.usage.start_time == datetime.fromtimestamp(
        fixture("db_jobs")["jobs"][0]["time"]["start"], tz=UTC
    )
    assert (recs["81"].status.state, recs["81"].status.exit_code) == (S.FAILED, 3)
    assert (recs["82"].status.exit_code, recs["82"].status.signal) == (None, 9)
    assert recs["83"].status.signal == 9  # over its memory: killed (jobacct mode)
    assert recs["86"].status.state is S.CANCELLED
    never = recs["85"].usage  # held, then cancelled: never ran
    assert (never.alloc_cpus, never.cpu_seconds, never.start_time) == (0, 0, None)


def test_cancel_outcomes_are_read_from_status() -> None:
    assert [e.code for e in D.cancel_errors(fixture("cancel_denied"))] == [2002]
    assert [e.code for e in D.cancel_errors(fixture("cancel_invalid_job"))] == [2017]
    assert [e.code for e in D.cancel_errors(fixture("cancel_already_done"))] == [2021]
    assert D.cancel_errors({"status": [], "errors": []}) == []
    assert D.cancel_reports_outcome and not V0040Dialect.cancel_reports_outcome


def test_ping_names_release_and_cluster() -> None:
    facts = D.parse_ping(fixture("ping"))
    assert (facts["slurm_release"], facts["cluster"], facts["dialect"]) == (
        "24.11.5",
        "mesocentre",
        "v0.0.42",
    )
    assert any(v.startswith("UP") for k, v in facts.items() if k.startswith("controller."))


# ------------------------------------------------------ adapter on the wire ----


def adapter_on(
    handler: Callable[[httpx.Request], httpx.Response], version: str
) -> SlurmRestAdapter:
    """An adapter whose wire is ``handler`` (no slurmrestd involved)."""
    return SlurmRestAdapter(
        site="meso",
        base_url="http://rest.test",
        api_version=version,
        token_source=_StaticTokens(),
        service_user="hpcgw",
        files_factory=_no_files,
        transport=httpx.MockTransport(handler),
    )


def _no_files(identity: HpcIdentity) -> WorkspaceFiles:
    raise AssertionError("no workspace in these tests")


class _StaticTokens:
    def token_for(self, identity: HpcIdentity) -> str:
        return f"token-of-{identity.login}"


def test_auto_probes_openapi_once_and_speaks_the_newest() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/openapi/v3":
            return httpx.Response(200, json=fixture("openapi_paths"))
        return httpx.Response(200, json=fixture("jobs"))

    adapter = adapter_on(handler, "auto")
    assert adapter.statuses(["84"])["84"].state is S.RUNNING
    assert adapter.statuses(["84"])["84"].state is S.RUNNING
    assert seen.count("/openapi/v3") == 1
    assert seen[1:] == ["/slurm/v0.0.42/jobs", "/slurm/v0.0.42/jobs"]


def test_a_server_offering_no_known_version_is_unsupported_not_a_crash() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"paths": {"/slurm/v0.0.37/ping/": {}}})

    adapter = adapter_on(handler, "auto")
    with pytest.raises(UnsupportedApiError, match=r"offers v0\.0\.37.*speaks v0\.0\.38") as err:
        adapter.statuses(["1"])
    assert err.value.offered == ("v0.0.37",)


def test_a_pinned_version_the_server_lacks_is_unsupported() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="Unable find requested URL.")

    with pytest.raises(UnsupportedApiError, match=r"does not serve /slurm/v0\.0\.38/jobs"):
        adapter_on(handler, "v0.0.38").statuses(["1"])


def test_refused_token_answered_511_is_an_authentication_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(511, json=fixture("jobs_token_refused"))

    with pytest.raises(AuthenticationError):
        adapter_on(handler, "v0.0.42").statuses(["1"])


def test_silent_cancel_of_v0040_is_read_back() -> None:
    """v0.0.40 answers 200 to every DELETE: the job is read back to learn the outcome."""
    owner = {"84": "bob"}
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        job_id = request.url.path.rsplit("/", 1)[1]
        if request.method == "DELETE":
            return httpx.Response(200, json={"errors": [], "warnings": []})
        if request.url.path.startswith("/slurmdb/"):
            return httpx.Response(200, json={"jobs": [], "errors": []})
        if job_id not in owner:
            return httpx.Response(404, json={"jobs": [], "errors": [{"error_number": 2017}]})
        job = dict(fixture("jobs")["jobs"][0], user_name=owner[job_id])
        return httpx.Response(200, json={"jobs": [job], "errors": []})

    adapter = adapter_on(handler, "v0.0.40")
    with pytest.raises(AuthenticationError):  # bob's job, still running: refused
        adapter.cancel("84", HpcIdentity("alice"))
    with pytest.raises(InvalidJobError):  # unknown to slurmctld and to accounting
        adapter.cancel("67000000", HpcIdentity("alice"))
    assert calls[:2] == ["DELETE /slurm/v0.0.40/job/84", "GET /slurm/v0.0.40/job/84"]


def test_lookup_by_name_is_one_percent_encoded_list_for_every_version() -> None:
    for version in supported_versions():
        query = dialect_for(version).db_jobs_by_name_query(["hpcgw-a", "hpcgw-b"])
        assert query == "job_name=hpcgw-a%2Chpcgw-b"
    for bad in (["a,b"], ["a&users=root"], []):
        with pytest.raises(ValueError):
            D.db_jobs_by_name_query(bad)
