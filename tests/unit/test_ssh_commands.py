"""SSH adapter: command lines (quoting) and the pure parsers of Slurm CLI output.

Sample outputs are real Slurm 22.05.8 output from the dev cluster (trimmed),
plus hostile and malformed variants.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from hpc_adapters.base import JobSpec, SchedulerState
from hpc_adapters.errors import JobRejectedError, SchedulerBusyError
from hpc_adapters.ssh.commands import (
    CancelOutcome,
    CommandResult,
    Probe,
    Sbatch,
    Scancel,
    Squeue,
    normalise_text,
    parse_sbatch,
    parse_scancel,
    parse_squeue,
    squeue_exit,
)
from hpc_adapters.ssh.sacct import Sacct, parse_duration, parse_exit, parse_sacct, parse_size

pytestmark = pytest.mark.unit
S = SchedulerState
EVIL = "x'; rm -rf / #$(id)`id`\"\n|&"


def ok(stdout: str = "", stderr: str = "") -> CommandResult:
    return CommandResult(0, stdout, stderr)


def failed(stderr: str, status: int = 1) -> CommandResult:
    return CommandResult(status, "", stderr)


# ------------------------------------------------------------- quoting ----


def test_output_is_decoded_and_dos_line_endings_normalised() -> None:
    assert normalise_text(b"123\r\nabc\rdef\n\xff") == "123\nabc\ndef\n\ufffd"


def test_sbatch_line_quotes_every_value_and_script_goes_to_stdin() -> None:
    spec = JobSpec(
        name=EVIL, script="echo hi\r\nexit 0\r\n", workdir="/w/a b", partition=EVIL, account="gep"
    )
    command = Sbatch(spec, {"PATH": "/usr/bin:/bin", "EVIL": EVIL, "HOME": "/w/a b"})
    argv = shlex.split(command.line())
    assert argv[:2] == ["env", "-i"]
    assert argv[2:5] == ["PATH=/usr/bin:/bin", f"EVIL={EVIL}", "HOME=/w/a b"]
    assert argv[6:9] == ["$(command -v sbatch)", "--export=ALL", "--parsable"]
    assert f"--job-name={EVIL}" in argv and f"--partition={EVIL}" in argv
    assert "--chdir=/w/a b" in argv and "--output=/w/a b/slurm.out" in argv
    assert "--account=gep" in argv and "--mem=512M" in argv and "--time=10" in argv
    assert command.stdin() == b"#!/bin/bash\necho hi\nexit 0\n"  # CRLF would make sbatch refuse
    assert not command.idempotent


def test_sbatch_line_in_a_real_shell_finds_the_login_sbatch_and_keeps_slurm_conf(
    tmp_path: Path,
) -> None:
    """The login node's sbatch (first on ITS PATH, e.g. /opt/slurm/bin) is run with
    exactly the job environment plus the login node's SLURM_CONF, values intact."""
    site_bin = tmp_path / "opt-slurm-bin"
    site_bin.mkdir()
    fake = site_bin / "sbatch"
    fake.write_text('#!/bin/sh\nprintf "%s\\0" "$@" > "$0.args"; env -0 > "$0.env"; echo 7\n')
    fake.chmod(0o755)
    spec = JobSpec(name=EVIL, script="true", workdir="/w/a b", account="gep")
    command = Sbatch(spec, {"PATH": "/usr/bin:/bin", "EVIL": EVIL})
    login_env = {"PATH": f"{site_bin}:/usr/bin:/bin", "SLURM_CONF": "/etc/site/slurm.conf"}
    done = subprocess.run(
        ["/bin/sh", "-c", command.line()], env=login_env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert command.parse(CommandResult(0, done.stdout, done.stderr)) == "7"
    args = (site_bin / "sbatch.args").read_text().split("\0")
    assert args[:2] == ["--export=ALL", "--parsable"] and f"--job-name={EVIL}" in args
    env_text = (site_bin / "sbatch.env").read_text()
    env = dict(item.split("=", 1) for item in env_text.split("\0") if item)
    assert env["SLURM_CONF"] == "/etc/site/slurm.conf" and env["EVIL"] == EVIL
    assert env["PATH"] == "/usr/bin:/bin"  # the job's PATH, not the login one
    # without SLURM_CONF on the login node nothing is added
    subprocess.run(["/bin/sh", "-c", command.line()], env={"PATH": login_env["PATH"]}, check=True)
    assert "SLURM_CONF=" not in (site_bin / "sbatch.env").read_text()


def test_squeue_exit_codes_of_both_releases() -> None:
    assert squeue_exit("768") == (3, None)  # 22.05: raw wait status
    assert squeue_exit("9") == (None, 9)
    assert squeue_exit("3:0") == (3, None)  # 24.11: code:signal
    assert squeue_exit("0:9") == (None, 9)
    assert squeue_exit("0:0") == (0, None)
    assert squeue_exit("") == (None, None) and squeue_exit("x:y") == (None, None)


def test_sbatch_refuses_bad_environment_names_and_paths() -> None:
    spec = JobSpec(name="j", script="true", workdir="/w")
    with pytest.raises(JobRejectedError, match="environment variable names"):
        Sbatch(spec, {"BAD NAME": "x"})
    with pytest.raises(JobRejectedError, match="not inside"):
        Sbatch(JobSpec(name="j", script="true", workdir="/w", stdout="../x"), {})


def test_sbatch_refuses_an_account_that_would_be_a_list_or_an_option() -> None:
    for account in ("gep,root", "--uid=0", "gep; id"):
        with pytest.raises(JobRejectedError, match="not a Slurm account name"):
            Sbatch(JobSpec(name="j", script="true", workdir="/w", account=account), {})


def test_squeue_sacct_scancel_lines() -> None:
    squeue = shlex.split(Squeue(["12", "13"]).line())
    assert squeue[:2] == ["env", "SLURM_TIME_FORMAT=%s"]
    assert squeue[2:7] == ["squeue", "--noheader", "-t", "all", "-j"] and squeue[7] == "12,13"
    assert squeue[-2:] == ["-O", "JobID:0|,State:0|,exit_code:0|,Reason:0|,UserName:0|,"
                           "SubmitTime:0|,StartTime:0|,EndTime:0|,"
                           "ArrayJobID:0|,ArrayTaskID:0|,Name:0"]  # fmt: skip
    by_name = shlex.split(Squeue(name=EVIL).line())
    assert by_name[by_name.index("-n") + 1] == EVIL
    assert "-n" not in shlex.split(Squeue(name="a,b").line())  # -n takes a list
    sacct = shlex.split(Sacct(["12", "13"]).line())
    assert "-X" in sacct and sacct[sacct.index("-j") + 1] == "12,13" and "--allusers" in sacct
    assert "-X" not in shlex.split(Sacct(["12"], steps=True).line())
    assert shlex.split(Scancel("12").line()) == ["scancel", "-v", "12"]
    for bad in (["12; id"], ["abc"]):
        with pytest.raises(ValueError):
            Squeue(bad)
        with pytest.raises(ValueError):
            Sacct(bad)
    with pytest.raises(ValueError):
        Sacct([])
    with pytest.raises(ValueError):
        Scancel("1 2")


# -------------------------------------------------------------- sbatch ----


def test_parse_sbatch() -> None:
    assert parse_sbatch(ok("155\n")) == "155"
    assert parse_sbatch(ok("motd line\n156;hpcgw\n", "sbatch: warning: x")) == "156"
    with pytest.raises(JobRejectedError, match="Invalid partition name"):
        parse_sbatch(
            failed(
                "sbatch: error: invalid partition specified: nope\n"
                "sbatch: error: Batch job submission failed: Invalid partition name specified\n"
            )
        )
    with pytest.raises(JobRejectedError, match="account"):
        parse_sbatch(failed("sbatch: error: Batch job submission failed: Invalid account or "
                            "account/partition combination specified"))  # fmt: skip
    with pytest.raises(SchedulerBusyError):
        parse_sbatch(failed("sbatch: error: Batch job submission failed: Unable to contact "
                            "slurm controller (connect failure)"))  # fmt: skip
    with pytest.raises(SchedulerBusyError, match="not installed"):
        parse_sbatch(failed("bash: sbatch: command not found", 127))
    with pytest.raises(SchedulerBusyError, match="without a job id"):
        parse_sbatch(ok("Submitted batch job\n"))


# -------------------------------------------------------------- squeue ----

SQUEUE = (
    "146|COMPLETED|0|None|alice|1795291657|1795291658|1795291658|146|N/A|wrap\r\n"
    "147|FAILED|768|NonZeroExitCode|alice|1795291657|1795291658|1795291658|147|N/A|hpcgw-a|b\n"
    "148|RUNNING|0|None|alice|1795291657|1795291658|1795292258|148|N/A|wrap\n"
    "149|PENDING|0|Resources|bob|1795291657|N/A|N/A|149|N/A|wait\n"
    "150|CANCELLED|15|None|bob|1795291657|1795291658|1795291660|150|N/A|c\n"
    "151|OUT_OF_MEMORY|253|OutOfMemory|bob|1795291657|1795291658|1795291660|151|N/A|oom\n"
    "garbage line\n"
    "152_[1-3]|PENDING|0|None|bob|1|N/A|N/A|152|1-3|array\n"
)


def test_parse_squeue() -> None:
    jobs = {j.job_id: j for j in parse_squeue(SQUEUE)}
    assert set(jobs) == {"146", "147", "148", "149", "150", "151"}
    assert (jobs["146"].state, jobs["146"].exit_code, jobs["146"].name) == (S.COMPLETED, 0, "wrap")
    assert (jobs["147"].state, jobs["147"].exit_code, jobs["147"].reason) == (
        S.FAILED,
        3,
        "NonZeroExitCode",
    )
    assert jobs["147"].name == "hpcgw-a|b"  # the name is last: '|' in it is kept
    running = jobs["148"]
    assert running.exit_code is None and running.end_time is None  # projected end ignored
    assert running.start_time == datetime.fromtimestamp(1795291658, tz=UTC)
    pending = jobs["149"]
    assert (pending.state, pending.start_time, pending.user) == (S.PENDING, None, "bob")
    assert (jobs["150"].state, jobs["150"].signal, jobs["150"].exit_code) == (S.CANCELLED, 15, None)
    assert (jobs["151"].state, jobs["151"].signal) == (S.OUT_OF_MEMORY, 125)


def test_unknown_state_stays_active_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        (job,) = parse_squeue("160|SOME_NEW_STATE|0|None|alice|1|2|3|160|N/A|x\n")
    assert job.state is S.UNKNOWN and job.state.active and not job.state.succeeded
    assert job.raw_state == "SOME_NEW_STATE"
    assert "unknown Slurm job state" in caplog.text


def test_squeue_parse_single_unknown_id_and_failures() -> None:
    unknown = failed("slurm_load_jobs error: Invalid job id specified\n")
    assert Squeue(["99999"]).parse(unknown) == []
    with pytest.raises(SchedulerBusyError, match="Unable to contact"):
        Squeue(["1", "2"]).parse(failed("squeue: error: Unable to contact slurm controller"))
    with pytest.raises(SchedulerBusyError, match="not installed"):
        Squeue(["1"]).parse(failed("bash: squeue: command not found", 127))
    named = Squeue(name="wrap").parse(ok(SQUEUE))
    assert [j.job_id for j in named] == ["146", "148"]


# --------------------------------------------------------------- sacct ----

SACCT = (
    "146|COMPLETED|0:0|None|alice|gep|debug|1|2|2|00:00.012|billing=1,cpu=1,mem=256M,node=1"
    "||1795291657|1795291658|1795291660|146|wrap\n"
    "146.batch|COMPLETED|0:0|||gep||1|2|2|00:00.010|cpu=1,mem=256M,node=1|1232K"
    "||1795291658|1795291660|146.batch|batch\n"
    "146.extern|COMPLETED|0:0|||gep||1|2|2|00:00:00|cpu=1,mem=256M,node=1|2M"
    "||1795291658|1795291660|146.extern|extern\n"
    "147|FAILED|3:0|None|alice|gep|debug|2|10|20|1-02:03:04|billing=2,cpu=2,node=1"
    "||1795291657|1795291658|1795291668|147|hpcgw-x|y\n"
    "150|CANCELLED by 1001|0:0|None|bob|gep|debug|1|0|0|00:00:00|billing=1"
    "||1|Unknown|Unknown|150|c\n"
    "151|OUT_OF_MEMORY|0:125|OutOfMemory|bob|gep|debug|1|5|5|00:01.5|||1|2|7|151|oom\n"
    "not|a|row\n"
)


def test_parse_sacct_jobs_steps_and_usage() -> None:
    records = {r.status.job_id: r for r in parse_sacct(SACCT)}
    assert set(records) == {"146", "147", "150", "151"}
    ok_job = records["146"].usage
    assert (ok_job.user, ok_job.account, ok_job.partition) == ("alice", "gep", "debug")
    assert (ok_job.alloc_cpus, ok_job.elapsed_seconds, ok_job.cpu_seconds) == (1, 2, 2)
    assert ok_job.total_cpu_seconds == 0.012 and ok_job.billing == 1
    assert ok_job.max_rss_bytes == 2 * 1024 * 1024  # the largest step
    assert ok_job.end_time == datetime.fromtimestamp(1795291660, tz=UTC)
    failed_job = records["147"]
    assert (failed_job.status.state, failed_job.status.exit_code) == (S.FAILED, 3)
    assert failed_job.usage.total_cpu_seconds == 93784.0 and failed_job.usage.cpu_seconds == 20
    assert failed_job.status.name == "hpcgw-x|y" and failed_job.usage.max_rss_bytes is None
    cancelled = records["150"].status
    assert cancelled.state is S.CANCELLED and cancelled.raw_state == "CANCELLED by 1001"
    assert cancelled.start_time is None and cancelled.end_time is None
    oom = records["151"]
    assert (oom.status.state, oom.status.signal, oom.status.exit_code) == (
        S.OUT_OF_MEMORY,
        125,
        None,
    )
    assert oom.usage.billing is None and oom.usage.total_cpu_seconds == 1.5


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:00.012", 0.012), ("01:02", 62), ("01:02:03", 3723), ("2-00:00:01", 172801), ("", None)],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_parse_size_and_exit() -> None:
    assert [parse_size(t) for t in ("1232K", "2M", "1.5G", "100", "", "x")] == [
        1232 * 1024,
        2 * 1024**2,
        int(1.5 * 1024**3),
        100,
        None,
        None,
    ]
    assert parse_exit("3:0") == (3, None) and parse_exit("0:9") == (None, 9)
    assert parse_exit("0:0") == (0, None) and parse_exit("") == (None, None)


def test_sacct_failure_is_busy() -> None:
    with pytest.raises(SchedulerBusyError, match="slurmdbd"):
        Sacct(["1"]).parse(failed("sacct: error: Problem talking to the database: slurmdbd"))


# ------------------------------------------------------ scancel, probe ----


@pytest.mark.parametrize(
    ("result", "outcome"),
    [
        (ok("", "scancel: Terminating job 148\n"), CancelOutcome.SIGNALLED),
        (
            ok("", "scancel: error: Kill job error on job id 9: Invalid job id specified\n"),
            CancelOutcome.NOT_IN_CONTROLLER,
        ),
        (
            ok(
                "",
                "scancel: error: Kill job error on job id 148: Job/step already completing "
                "or completed\n",
            ),
            CancelOutcome.ALREADY_DONE,
        ),
        (
            failed("scancel: error: Kill job error on job id 148: Access/permission denied\n"),
            CancelOutcome.DENIED,
        ),
    ],
)
def test_parse_scancel(result: CommandResult, outcome: CancelOutcome) -> None:
    assert parse_scancel(result) is outcome


def test_parse_scancel_unexpected_is_busy() -> None:
    with pytest.raises(SchedulerBusyError):
        parse_scancel(failed("scancel: error: Unable to contact slurm controller"))


def test_probe() -> None:
    facts = Probe().parse(
        ok(
            "slurm-wlm 22.05.8\r\nClusterName             = mesocentre\r\n"
            "Slurmctld(primary) at vm is UP\r\n"
        )
    )
    assert facts == {
        "slurm_release": "22.05.8",
        "dialect": "cli",
        "cluster": "mesocentre",
        "controller.vm": "UP (primary)",
    }
    down = Probe().parse(CommandResult(1, "slurm 23.11.1\n", "scontrol: error: no controller"))
    assert down["slurm_release"] == "23.11.1" and "no controller" in down["controller_error"]
    with pytest.raises(SchedulerBusyError):
        Probe().parse(failed("sinfo: command not found", 127))


def test_lookups_by_name_quote_a_list_and_bound_sacct_in_utc() -> None:
    since = datetime(2026, 12, 4, 21, 0, 5, tzinfo=timezone(timedelta(hours=1)))
    line = Sacct(names=["hpcgw-a", "hpcgw-b"], since=since).line()
    argv = shlex.split(line)
    assert "--name=hpcgw-a,hpcgw-b" in argv and argv[argv.index("-S") + 1] == "2026-12-04T20:00:05"
    assert "TZ=UTC" in argv and "-X" in argv
    assert "-n hpcgw-a,hpcgw-b" in Squeue(names=["hpcgw-a", "hpcgw-b"]).line()
    for bad in (["a,b"], ["x y"], ["$(id)"], []):
        with pytest.raises(ValueError):
            Sacct(names=bad, since=since)
    with pytest.raises(ValueError, match="start time"):
        Sacct(names=["hpcgw-a"])
