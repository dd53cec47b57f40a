"""SSH transport behaviour against the dev cluster's real sshd (127.0.0.1:2222) and Slurm.

What the shared contract suite cannot show: one TCP connection reused for many
calls, a connection killed mid-run (the next call reconnects, the job is not
lost), sbatch never blindly retried, sessions bounded below sshd's MaxSessions,
host keys verified, certificates bound to one login, key files, SFTP refusing
symlinks, and what ``hpcgw sites check`` reports.
"""

from __future__ import annotations

import os
import pwd
import socket
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from hpc_adapters.base import HpcIdentity, JobSpec, SchedulerState
from hpc_adapters.errors import AuthenticationError, TransportError, WorkspaceError
from hpc_adapters.ssh import CertificateSigner, KeyFileCredentials, SshAdapter, SshPool
from hpc_adapters.ssh.commands import CommandResult
from tests.conftest import require_root, sacct_field
from tests.integration.adapters import (
    SSH_CA_KEY,
    SSH_HOST,
    SSH_PORT,
    SSH_SERVICE_USER,
    SSH_WORK_ROOT,
    make_ssh_pool,
    ssh_known_hosts,
)
from tests.polling import eventually

pytestmark = pytest.mark.slurm
ALICE = HpcIdentity("alice")
S = SchedulerState


class Shell:
    """A raw command for the pool (tests only)."""

    def __init__(self, line: str, idempotent: bool = True) -> None:
        self.verb = line.split()[0]
        self.idempotent = idempotent
        self._line = line

    def line(self) -> str:
        return self._line

    def stdin(self) -> bytes | None:
        return None


def sever(pool: SshPool, login: str) -> None:
    """Kill a pooled connection's TCP socket under paramiko, as a network drop would."""
    transport = pool.transport_of(login)
    assert transport is not None
    transport.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]


@pytest.fixture
def adapter(cluster: str) -> Iterator[SshAdapter]:
    require_root("signing certificates needs the dev CA key (root only)")
    os.makedirs(SSH_WORK_ROOT, exist_ok=True)
    os.chmod(SSH_WORK_ROOT, 0o1777)
    ssh = SshAdapter("dev", make_ssh_pool(), SSH_SERVICE_USER, SSH_WORK_ROOT)
    yield ssh
    ssh.close()


@pytest.fixture
def workdir(adapter: SshAdapter) -> Iterator[str]:
    path = f"{SSH_WORK_ROOT}/ssh-{uuid.uuid4().hex[:12]}"
    adapter.files(ALICE).mkdir(path)
    yield path
    adapter.files(ALICE).remove_tree(path)


def wait_final(adapter: SshAdapter, job_id: str, timeout: float = 90) -> SchedulerState:
    def ended() -> SchedulerState | None:
        st = adapter.statuses([job_id]).get(job_id)
        return st.state if st is not None and not st.state.active else None

    return eventually(ended, timeout, f"job {job_id} to end", every=0.5)


def test_one_connection_per_login_for_many_calls(adapter: SshAdapter, workdir: str) -> None:
    ids = [adapter.submit(JobSpec(f"reuse-{i}", "true", workdir, stdout=f"r{i}"), ALICE)
           for i in range(5)]  # fmt: skip
    for _ in range(30):
        adapter.statuses(ids)
    adapter.usages(ids)
    adapter.files(ALICE).listdir(workdir)
    # alice: 5 sbatch + mkdir/listdir (SFTP); bob: 30 squeue (+ sacct) -> two connections
    assert adapter.pool.stats.connects == 2, adapter.pool.stats
    assert adapter.pool.stats.commands >= 36
    wait_final(adapter, ids[-1])


def test_killed_connection_mid_run_reconnects_and_the_job_is_not_lost(
    adapter: SshAdapter, workdir: str
) -> None:
    pool = adapter.pool
    job_id = adapter.submit(JobSpec("killed-conn", "sleep 6; echo survived", workdir), ALICE)
    eventually(
        lambda: adapter.statuses([job_id])[job_id].state is S.RUNNING,
        30,
        f"job {job_id} to run",
        every=0.3,
    )
    before = pool.stats.connects
    sever(pool, SSH_SERVICE_USER)
    sever(pool, "alice")
    time.sleep(0.2)
    # The next calls reconnect by themselves; the Slurm job never depended on SSH.
    assert adapter.statuses([job_id])[job_id].state in (S.RUNNING, S.COMPLETING, S.COMPLETED)
    assert wait_final(adapter, job_id) is S.COMPLETED
    assert adapter.files(ALICE).read_bytes(f"{workdir}/slurm.out", 100) == b"survived\n"
    assert pool.stats.connects == before + 2
    assert sacct_field(job_id, "User") == "alice"


def test_drop_during_a_query_is_retried_once(adapter: SshAdapter) -> None:
    pool = adapter.pool
    pool.run(SSH_SERVICE_USER, Shell("true"))
    threading.Timer(0.5, sever, (pool, SSH_SERVICE_USER)).start()
    result = pool.run(SSH_SERVICE_USER, Shell("sleep 2; echo done"))
    assert result == CommandResult(0, "done\n", "")
    assert pool.stats.retries == 1


def test_drop_during_sbatch_is_not_retried(adapter: SshAdapter) -> None:
    pool = adapter.pool
    pool.run("alice", Shell("true"))
    threading.Timer(0.5, sever, (pool, "alice")).start()
    with pytest.raises(TransportError, match="lost during sleep"):
        pool.run("alice", Shell("sleep 2; echo once", idempotent=False))
    assert pool.stats.retries == 0


def test_sessions_are_bounded_below_max_sessions(cluster: str) -> None:
    require_root("needs the dev CA key")

    def hammer(pool: SshPool, n: int) -> list[BaseException]:
        errors: list[BaseException] = []

        def one() -> None:
            try:
                pool.run(SSH_SERVICE_USER, Shell("sleep 0.5"))
            except TransportError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=one) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return errors

    bounded = make_ssh_pool(max_sessions=10)
    assert hammer(bounded, 40) == []
    assert bounded.stats.connects == 1 and bounded.stats.peak_sessions == 9
    bounded.close()
    # Without the bound (more channels than sshd's MaxSessions 20) sshd refuses some.
    unbounded = make_ssh_pool(max_sessions=60)
    refused = hammer(unbounded, 40)
    unbounded.close()
    assert refused and all("refused a session" in str(e) for e in refused), {
        str(e) for e in refused
    }


def test_unknown_or_wrong_host_key_is_refused(tmp_path: Path, cluster: str) -> None:
    require_root("needs the dev CA key")
    empty = tmp_path / "empty"
    empty.write_text("")
    wrong = tmp_path / "wrong"
    for algo in ("ed25519", "ecdsa", "rsa"):  # right host, other keys (as after a MITM)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", algo, "-N", "", "-f", tmp_path / algo], check=True
        )
        kind, blob = (tmp_path / f"{algo}.pub").read_text().split()[:2]
        with wrong.open("a") as fh:
            fh.write(f"[{SSH_HOST}]:{SSH_PORT} {kind} {blob}\n")
    for known_hosts, message in ((empty, "not found in known_hosts"), (wrong, "does not match")):
        pool = SshPool(SSH_HOST, SSH_PORT, CertificateSigner(SSH_CA_KEY), str(known_hosts))
        with pytest.raises(TransportError, match=message):
            pool.run("alice", Shell("true"))
        pool.close()


def test_certificate_is_bound_to_its_login(cluster: str) -> None:
    require_root("needs the dev CA key")
    signer = CertificateSigner(SSH_CA_KEY)

    class AlicesCertForEveryone:
        def key_for(self, login: str) -> paramiko.PKey:
            return signer.key_for("alice")

        def describe(self) -> dict[str, str]:
            return {}

    pool = SshPool(SSH_HOST, SSH_PORT, AlicesCertForEveryone(), ssh_known_hosts())
    assert pool.run("alice", Shell("id -un")).stdout == "alice\n"
    with pytest.raises(AuthenticationError, match="refused the SSH credential of 'bob'"):
        pool.run("bob", Shell("id -un"))
    pool.close()
    nobody = SshPool(SSH_HOST, SSH_PORT, signer, ssh_known_hosts())
    with pytest.raises(AuthenticationError):
        nobody.run("nosuchuser", Shell("true"))
    nobody.close()


def test_key_file_credentials(tmp_path: Path, cluster: str) -> None:
    require_root("needs the dev CA key")
    key = tmp_path / "alice"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-s", SSH_CA_KEY, "-I", "t", "-n", "alice", "-V", "+5m", f"{key}.pub"],
        check=True,
    )
    pool = SshPool(
        SSH_HOST, SSH_PORT, KeyFileCredentials(f"{tmp_path}/{{login}}"), ssh_known_hosts()
    )
    assert pool.run("alice", Shell("id -un")).stdout == "alice\n"
    with pytest.raises(AuthenticationError, match="no SSH key for 'bob'"):
        pool.run("bob", Shell("true"))
    pool.close()


def test_sftp_files_belong_to_the_user_and_symlinks_are_refused(
    adapter: SshAdapter, workdir: str
) -> None:
    files = adapter.files(ALICE)
    files.write_bytes(f"{workdir}/a/b/data.txt", b"x" * 10)
    alice = pwd.getpwnam("alice").pw_uid
    st = os.lstat(f"{workdir}/a/b/data.txt")
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (alice, 0o640)
    assert stat.S_IMODE(os.lstat(f"{workdir}/a").st_mode) == 0o750
    assert files.listdir(f"{workdir}/a/b") == ["data.txt"]  # no temp file left behind
    # Symlinks planted in the workspace (as a job could) are never followed.
    os.symlink("/etc", f"{workdir}/etc-link")
    os.symlink("/etc/hostname", f"{workdir}/host-link")
    for path in (f"{workdir}/etc-link/hostname", f"{workdir}/host-link"):
        with pytest.raises(WorkspaceError):
            files.read_bytes(path, 1000)
        assert not files.is_regular_file(path)
    with pytest.raises(WorkspaceError):
        files.listdir(f"{workdir}/etc-link")
    with pytest.raises(WorkspaceError, match="outside"):
        files.read_bytes("/etc/hostname", 1000)
    with pytest.raises(WorkspaceError, match=r"'\.\.'"):
        files.mkdir(f"{workdir}/../escape")
    with pytest.raises(WorkspaceError, match="larger"):
        files.read_bytes(f"{workdir}/a/b/data.txt", 5)
    files.remove_tree(f"{workdir}/etc-link")  # removes the link, not /etc
    assert Path("/etc/hostname").exists()
    files.remove_tree(workdir)
    assert not Path(workdir).exists() and Path("/etc/hostname").exists()
    files.remove_tree(workdir)  # missing: not an error


def test_put_and_get_stream_large_files(adapter: SshAdapter, workdir: str, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(5 * 1024 * 1024 + 123))
    files = adapter.files(ALICE)
    files.put_file(str(src), f"{workdir}/in/big.bin")
    files.get_file(f"{workdir}/in/big.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    assert os.lstat(f"{workdir}/in/big.bin").st_uid == pwd.getpwnam("alice").pw_uid


def test_check_reports_release_latency_and_host_key(adapter: SshAdapter) -> None:
    facts = adapter.check()
    assert facts["slurm_release"].startswith("22.05")
    assert facts["transport"] == "ssh" and facts["ssh_auth"] == "certificate"
    assert float(facts["probe_ms"]) > 0 and "connect_ms" in facts
    assert facts["server_version"].startswith("SSH-2.0-OpenSSH")
    assert any(k.startswith("controller.") for k in facts)
    assert "connect_ms" not in adapter.check()  # second probe reuses the connection
