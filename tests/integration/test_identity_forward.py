"""slurmrestd *forward* mode: the user's own identity-provider token submits the job.

Slurm must trust the provider's keys (``AuthAltParameters=jwks=<file>``). The
shared dev cluster is never reconfigured for this: the test starts its own
slurmctld (cluster ``hpcgwfwd``, no nodes ever register, no accounting) and its
own slurmrestd on free ports, with ``jwks=`` pointing at the realm's keys, and
stops both afterwards. The keys are the real Keycloak's (``deploy/keycloak``,
realm ``gep``), copied into a file as ``deploy/keycloak/keycloak.sh jwks FILE``
does; the realm's ``sun`` mapper puts the user attribute ``hpc_login`` in the
token. A job accepted there proves Slurm authenticated the RS256 token as the
user named by its ``sun`` claim; it never runs.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.identity.oidc import TokenValidator
from gateway.settings import OidcSettings
from hpc_adapters.base import HpcIdentity, JobSpec
from hpc_adapters.errors import AuthenticationError, HpcError
from hpc_adapters.slurmrest import ForwardedTokenSource, SlurmRestAdapter
from tests.conftest import JWT_KEY
from tests.identity_fixtures import (
    ImportedKey,
    Keycloak,
    claims_for,
    imported_key,
    keycloak,
    password_token,
)
from tests.polling import eventually

__all__ = ["imported_key", "keycloak"]

pytestmark = [pytest.mark.slurm, pytest.mark.needs_root("starts a private slurmctld")]

SLURM_CONF = """\
ClusterName=hpcgwfwd
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwks={jwks},jwt_key={jwt_key}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmctldLogFile={root}/slurmctld.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MailProg=/bin/true
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName=fwdnode NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=4 RealMemory=8192 State=UNKNOWN
PartitionName=fwd Nodes=fwdnode Default=YES MaxTime=00:10:00 State=UP
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@pytest.fixture(scope="module")
def forward_slurmrestd(
    cluster: str, keycloak: Keycloak, imported_key: ImportedKey
) -> Iterator[str]:
    """URL of a private slurmrestd whose slurmctld trusts the realm's JWKS."""
    if shutil.which("slurmctld") is None or shutil.which("slurmrestd") is None:
        pytest.skip("slurmctld/slurmrestd not installed")
    root = Path(tempfile.mkdtemp(prefix="hpcgw-fwd-"))
    root.chmod(0o755)
    slurm = pwd.getpwnam("slurm")
    (root / "state").mkdir()
    os.chown(root / "state", slurm.pw_uid, slurm.pw_gid)
    jwks = root / "jwks.json"
    jwks.write_text(httpx.get(f"{keycloak.issuer}/protocol/openid-connect/certs").text)
    jwks.chmod(0o644)
    conf = root / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(
            ctld_port=_free_port(), slurmd_port=_free_port(), jwks=jwks, jwt_key=JWT_KEY, root=root
        )
    )
    rest_port = _free_port()
    log = (root / "procs.log").open("ab")
    ctld = subprocess.Popen(["slurmctld", "-D", "-i", "-f", str(conf)], stdout=log, stderr=log)
    rest = subprocess.Popen(
        [
            "slurmrestd",
            "-f",
            str(conf),
            "-s",
            "openapi/v0.0.38",
            "-u",
            "nobody",
            "-g",
            "nogroup",
            "-a",
            "rest_auth/jwt",
            f"127.0.0.1:{rest_port}",
        ],
        stdout=log,
        stderr=log,
        env={**os.environ, "SLURM_JWT": "daemon"},
    )
    url = f"http://127.0.0.1:{rest_port}"
    try:

        def answering() -> bool:
            if rest.poll() is not None or ctld.poll() is not None:
                pytest.fail(f"private slurmctld/slurmrestd exited: see {root}")
            try:
                httpx.get(f"{url}/openapi/v3", timeout=2)
            except httpx.HTTPError:
                return False
            return True

        eventually(answering, 30, f"the private slurmctld/slurmrestd to start (see {root})")
        yield url
    finally:
        _stop(rest)
        _stop(ctld)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def _submit(url: str, login: str, token: str) -> dict[str, Any]:
    body = {
        "job": {
            "name": "forward-test",
            "current_working_directory": "/tmp",
            "environment": {"PATH": "/usr/bin:/bin"},
        },
        "script": "#!/bin/bash\ntrue\n",
    }
    resp = httpx.post(
        f"{url}/slurm/v0.0.38/job/submit",
        json=body,
        timeout=30,
        headers={"X-SLURM-USER-NAME": login, "X-SLURM-USER-TOKEN": token},
    )
    try:
        return dict(resp.json())
    except ValueError:
        return {"errors": [{"error": f"HTTP {resp.status_code}"}]}


def test_users_own_token_submits_as_that_user(forward_slurmrestd: str, keycloak: Keycloak) -> None:
    token = password_token(keycloak, "alice")
    # the very token the gateway accepted is the one Slurm accepts
    claims = TokenValidator(OidcSettings(issuer=keycloak.issuer)).validate(token)
    assert claims["sun"] == "alice"
    adapter = SlurmRestAdapter(
        site="forward",
        base_url=forward_slurmrestd,
        api_version="v0.0.38",
        token_source=ForwardedTokenSource(),
        service_user="hpcgw",
        files_factory=lambda identity: pytest.fail("no file access expected"),
    )
    spec = JobSpec(
        name="forward-test", script="#!/bin/bash\ntrue\n", workdir="/tmp", time_limit_minutes=1
    )
    job_id = adapter.submit(spec, HpcIdentity(login="alice", token=token))
    info = httpx.get(
        f"{forward_slurmrestd}/slurm/v0.0.38/job/{job_id}",
        timeout=30,
        headers={"X-SLURM-USER-NAME": "alice", "X-SLURM-USER-TOKEN": token},
    ).json()
    assert info["jobs"][0]["user_name"] == "alice"
    with pytest.raises(AuthenticationError):  # no token to forward, no fallback
        adapter.submit(spec, HpcIdentity(login="alice"))
    adapter.close()


def test_slurm_refuses_tokens_it_should_not_trust(
    forward_slurmrestd: str, keycloak: Keycloak, imported_key: ImportedKey
) -> None:
    alice = password_token(keycloak, "alice")
    assert _submit(forward_slurmrestd, "alice", alice).get("job_id")
    # alice's token cannot act as bob
    assert not _submit(forward_slurmrestd, "bob", alice).get("job_id")
    # a key the provider never published, under the provider's kid
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    forged = jwt.encode(
        {"sun": "alice", "iat": now, "exp": now + 60},
        other,
        "RS256",
        headers={"kid": jwt.get_unverified_header(alice)["kid"]},
    )
    assert not _submit(forward_slurmrestd, "alice", forged).get("job_id")
    # signed by a key the realm publishes: accepted while valid, refused once expired
    sub = keycloak.user_id("alice")
    valid = imported_key.sign(claims_for(keycloak, sub, sun="alice"))
    assert _submit(forward_slurmrestd, "alice", valid).get("job_id")
    expired = imported_key.sign(
        claims_for(keycloak, sub, sun="alice", iat=now - 600, exp=now - 300)
    )
    assert not _submit(forward_slurmrestd, "alice", expired).get("job_id")


def test_hpc_errors_stay_typed(forward_slurmrestd: str) -> None:
    adapter = SlurmRestAdapter(
        site="forward",
        base_url=forward_slurmrestd,
        api_version="v0.0.38",
        token_source=ForwardedTokenSource(),
        service_user="hpcgw",
        files_factory=lambda identity: pytest.fail("no file access expected"),
    )
    spec = JobSpec(name="x", script="#!/bin/bash\ntrue\n", workdir="/tmp")
    with pytest.raises(HpcError):
        adapter.submit(spec, HpcIdentity(login="alice", token="not-a-jwt"))
    adapter.close()
