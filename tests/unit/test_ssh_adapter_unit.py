"""SSH adapter logic without a network: a scripted pool, real ssh-keygen certificates
with a throw-away CA, connection error mapping with a fake paramiko client, and the
site settings that select the adapter."""

from __future__ import annotations

import base64
import importlib.util
import subprocess
from pathlib import Path
from typing import Any

import paramiko
import pytest

from gateway.settings import SiteSettings
from gateway.sites import build_adapter
from hpc_adapters.base import HpcIdentity, JobSpec, SchedulerState
from hpc_adapters.errors import (
    AuthenticationError,
    InvalidJobError,
    TransportError,
)
from hpc_adapters.ssh import CertificateSigner, KeyFileCredentials, SshAdapter, SshPool
from hpc_adapters.ssh.commands import CommandResult

pytestmark = pytest.mark.unit
ALICE = HpcIdentity("alice")


class ScriptedPool:
    """Stands in for SshPool: answers each verb from a script and records the calls."""

    def __init__(self, answers: dict[str, list[CommandResult]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, str]] = []

    def run(self, login: str, command: Any, timeout: float | None = None) -> CommandResult:
        self.calls.append((login, command.verb, command.line()))
        return self.answers[command.verb].pop(0)

    def close(self) -> None:
        pass


def adapter_with(answers: dict[str, list[CommandResult]]) -> tuple[SshAdapter, ScriptedPool]:
    pool = ScriptedPool(answers)
    return SshAdapter("t", pool, "monitor", "/work"), pool  # type: ignore[arg-type]


def row(job_id: str, state: str, code: str = "0") -> str:
    return f"{job_id}|{state}|{code}|None|alice|1|2|3|{job_id}|N/A|n{job_id}\n"


def test_statuses_is_one_squeue_plus_one_sacct_for_missing_ids() -> None:
    sacct = "7|COMPLETED|0:0|None|alice|gep|debug|1|2|2|00:00:01|billing=1||1|2|4|7|n7\n"
    ssh, pool = adapter_with(
        {
            "squeue": [CommandResult(0, row("5", "RUNNING") + row("6", "PENDING"), "")],
            "sacct": [CommandResult(0, sacct, "")],
        }
    )
    got = ssh.statuses(["5", "6", "7", "8", "bad id", "5"])
    assert {k: v.state for k, v in got.items()} == {
        "5": SchedulerState.RUNNING,
        "6": SchedulerState.PENDING,
        "7": SchedulerState.COMPLETED,
    }
    assert [(c[0], c[1]) for c in pool.calls] == [("monitor", "squeue"), ("monitor", "sacct")]
    assert "-j 5,6,7,8" in pool.calls[0][2] and "-j 7,8" in pool.calls[1][2]


def test_statuses_needs_no_sacct_when_the_controller_knows_everything() -> None:
    ssh, pool = adapter_with({"squeue": [CommandResult(0, row("5", "RUNNING"), "")]})
    assert set(ssh.statuses(["5"])) == {"5"} and len(pool.calls) == 1
    assert ssh.statuses(["not-an-id"]) == {} and len(pool.calls) == 1


def test_submit_as_the_user_with_home_in_the_workspace() -> None:
    ssh, pool = adapter_with({"sbatch": [CommandResult(0, "42\n", "")]})
    spec = JobSpec(name="j", script="true", workdir="/work/j", environment={"X": "1"})
    assert ssh.submit(spec, ALICE) == "42"
    login, verb, line = pool.calls[0]
    assert (login, verb) == ("alice", "sbatch")
    assert "HOME=/work/j" in line and "X=1" in line and "PATH=/usr/local/bin" in line
    with pytest.raises(AuthenticationError):
        ssh.submit(spec, HpcIdentity("Robert'); DROP"))


def test_cancel_outcomes() -> None:
    purged = "9|COMPLETED|0:0|None|alice|gep|debug|1|1|1|00:00:00|||1|2|3|9|n\n"
    invalid = CommandResult(0, "", "scancel: error: Kill job error on job id 9: Invalid job id")
    invalid = CommandResult(0, "", invalid.stderr + " specified\n")
    ssh, pool = adapter_with(
        {
            "scancel": [
                CommandResult(0, "", "scancel: Terminating job 9\n"),
                invalid,
                invalid,
                CommandResult(1, "", "scancel: error: ... Access/permission denied\n"),
            ],
            "sacct": [CommandResult(0, purged, ""), CommandResult(0, "", "")],
        }
    )
    ssh.cancel("9", ALICE)  # running: signalled
    ssh.cancel("9", ALICE)  # purged but in accounting: no-op
    with pytest.raises(InvalidJobError):
        ssh.cancel("9", ALICE)  # known nowhere
    with pytest.raises(AuthenticationError, match="refused to let 'alice' cancel 9"):
        ssh.cancel("9", ALICE)
    with pytest.raises(InvalidJobError):
        ssh.cancel("9; reboot", ALICE)
    assert [c[:2] for c in pool.calls].count(("monitor", "sacct")) == 2


def test_usages_is_one_sacct_with_steps() -> None:
    ssh, pool = adapter_with({"sacct": [CommandResult(0, "", "")]})
    assert ssh.usages(["1", "2"]) == {} and ssh.usages([]) == {}
    assert len(pool.calls) == 1 and " -X " not in pool.calls[0][2]


# ----------------------------------------------------------- credentials ----


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    key = tmp_path / "ca"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    return key


def test_certificates_name_the_login_and_are_cached(ca: Path, tmp_path: Path) -> None:
    now = [1_000_000.0]
    signer = CertificateSigner(str(ca), 5, renew_before=60, clock=lambda: now[0])
    key = signer.key_for("alice")
    assert key.public_blob is not None
    assert key.public_blob.key_type == "ssh-ed25519-cert-v01@openssh.com"
    cert = tmp_path / "c-cert.pub"
    blob = key.public_blob
    cert.write_text(f"{blob.key_type} {base64.b64encode(blob.key_blob).decode()}\n")
    shown = subprocess.run(["ssh-keygen", "-L", "-f", cert], capture_output=True, text=True)
    assert "Principals: \n                alice" in shown.stdout
    assert "Critical Options: (none)" in shown.stdout and "Extensions: (none)" in shown.stdout
    assert signer.key_for("alice") is key and signer.signed == 1
    now[0] += 5 * 60 - 59  # within renew_before of expiry: a new certificate
    assert signer.key_for("alice") is not key and signer.signed == 2
    assert signer.key_for("bob") is not key
    with pytest.raises(AuthenticationError, match="not a valid HPC login"):
        signer.key_for("-oProxyCommand=x")


def test_signing_failures_are_authentication_errors(tmp_path: Path) -> None:
    with pytest.raises(AuthenticationError, match="cannot sign"):
        CertificateSigner(str(tmp_path / "missing-ca")).key_for("alice")
    with pytest.raises(AuthenticationError, match="cannot run"):
        CertificateSigner("ca", ssh_keygen=str(tmp_path / "nope")).key_for("alice")


def test_key_files(tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", tmp_path / "alice"])
    creds = KeyFileCredentials(f"{tmp_path}/{{login}}")
    assert creds.key_for("alice").get_name() == "ssh-ed25519"
    with pytest.raises(AuthenticationError, match="no SSH key for 'bob'"):
        creds.key_for("bob")
    with pytest.raises(ValueError):
        KeyFileCredentials("/etc/hpcgw/one-key-for-all")


# ------------------------------------------------------- error mapping ----


class FakeClient:
    """paramiko.SSHClient stand-in whose connect() raises what it is told to."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.closed = False

    def get_host_keys(self) -> paramiko.HostKeys:
        return paramiko.HostKeys()

    def set_missing_host_key_policy(self, policy: object) -> None:
        assert isinstance(policy, paramiko.RejectPolicy)  # never auto-accept

    def connect(self, *args: object, **kw: object) -> None:
        raise self.error

    def close(self) -> None:
        self.closed = True


class StaticKey:
    def key_for(self, login: str) -> paramiko.PKey:
        return paramiko.RSAKey.generate(1024)

    def describe(self) -> dict[str, str]:
        return {}


@pytest.mark.parametrize(
    ("error", "expected", "match"),
    [
        (paramiko.AuthenticationException("denied"), AuthenticationError, "refused the SSH"),
        (ConnectionRefusedError(111, "refused"), TransportError, "cannot connect"),
        (TimeoutError("timed out"), TransportError, "cannot connect"),
        (paramiko.SSHException("not found in known_hosts"), TransportError, "known_hosts"),
        (EOFError(), TransportError, "cannot connect"),
    ],
)
def test_connection_errors_map_to_the_tree(
    tmp_path: Path, error: BaseException, expected: type[Exception], match: str
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    clients: list[FakeClient] = []

    def factory() -> Any:
        clients.append(FakeClient(error))
        return clients[-1]

    pool = SshPool("h", 22, StaticKey(), str(known), client_factory=factory)
    with pytest.raises(expected, match=match):
        pool.run("alice", _Cmd())
    assert clients[0].closed


def test_missing_known_hosts_is_a_transport_error(tmp_path: Path) -> None:
    pool = SshPool("h", 22, StaticKey(), str(tmp_path / "none"))
    with pytest.raises(TransportError, match="known_hosts"):
        pool.run("alice", _Cmd())


class _Cmd:
    verb = "true"
    idempotent = True

    def line(self) -> str:
        return "true"

    def stdin(self) -> bytes | None:
        return None


# ---------------------------------------------------------- site choice ----


def test_site_settings_select_the_ssh_adapter_without_connecting() -> None:
    site = SiteSettings(
        adapter="ssh",
        ssh={"host": "login.example.org", "port": 2222, "service_user": "hpcmon"},
        workspace_root="/scratch/hpcgw",
    )
    adapter = build_adapter("mesocentre", site)
    assert isinstance(adapter, SshAdapter) and adapter.site == "mesocentre"
    assert (adapter.pool.host, adapter.pool.port) == ("login.example.org", 2222)
    assert isinstance(adapter.pool.credentials, CertificateSigner)
    assert adapter.pool.stats.connects == 0 and adapter.service_user == "hpcmon"
    keyed = build_adapter("k", SiteSettings(adapter="ssh", ssh={"auth": "key_file"}))
    assert isinstance(keyed.pool.credentials, KeyFileCredentials)  # type: ignore[attr-defined]


@pytest.mark.skipif(
    importlib.util.find_spec("pyslurm") is not None, reason="pyslurm is installed here"
)
def test_pyslurm_site_says_clearly_that_pyslurm_is_missing() -> None:
    with pytest.raises(TransportError, match="pyslurm"):
        build_adapter("p", SiteSettings(adapter="pyslurm"))
