"""The gateway run as its service account ``hpcgw``, not root -- as a centre installs it.

Every e2e gateway runs so when the tests run as root (``tests/e2e/conftest.py``):
a state folder of its own (config, database, publication, cache), a copy of the
cluster's slurmrestd JWT key readable by it alone, and a workspace root that is
a setgid folder of a group it shares with the users (``hpcgw-work``, made by
``deploy/devcluster.sh``) with group-writable workspace modes, as
docs/installing.md tells an operator. This test checks that it really is so:
no process of the gateway is root, and a job with an input by reference is
staged, run on the real cluster as ``alice``, published and dismissed without it.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.clusters import HPCGW
from tests.conftest import REPO, require_root
from tests.e2e.conftest import (
    SERVICE_ACCOUNT,
    SHARED_WORK,
    free_port,
    running_gateway,
    wait_final,
    write_config,
)
from tests.polling import eventually

pytestmark = pytest.mark.e2e

ACCOUNT = SERVICE_ACCOUNT
XML = "<scene>as the service account</scene>"


def _uids_of(config: Path) -> set[int]:
    """Real uids of every process started with ``config`` (API, gunicorn workers, worker)."""
    uids: set[int] = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if str(config).encode() in cmdline:
            uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
            uids.add(int(uid_line.split()[1]))
    return uids


def _accounted(name: str) -> list[str]:
    """``User|State`` of the Slurm jobs called ``name``, once slurmdbd has them (it lags)."""

    def rows() -> list[str] | None:
        out = HPCGW.run("sacct", "-a", "-X", "-n", "-P", "--name", name, "-o", "User,State")
        found = out.stdout.split()
        return found if found and all(r.endswith("COMPLETED") for r in found) else None

    return eventually(rows, 60, f"{name} in Slurm accounting")


def test_a_job_runs_end_to_end_with_the_gateway_as_its_service_account(
    cluster: str, gateway_tmp: Path, file_server: tuple[str, Path]
) -> None:
    require_root("the test starts the gateway as another account")
    base, served = file_server
    (served / "scene.xml").write_text(XML)
    port = free_port()
    config = write_config(gateway_tmp, port)
    body = {"inputs": {"string_input": "svc", "xml_input": {"href": f"{base}/scene.xml"}}}
    with running_gateway(gateway_tmp, config, port) as url, httpx.Client() as client:
        assert _uids_of(config) == {pwd.getpwnam(ACCOUNT).pw_uid}  # no process is root
        created = client.post(
            f"{url}/processes/echo/execution", json=body, headers={"Prefer": "respond-async"}
        )
        assert created.status_code == 201, created.text
        job_url = created.headers["Location"]
        job_id = job_url.rstrip("/").rsplit("/", 1)[-1]
        status = wait_final(client, job_url)
        assert status["status"] == "successful", status.get("message")
        results = client.get(f"{job_url}/results").json()
        assert results["string_output"] == "svc" and results["xml_output"] == XML
        workspaces = [p for p in SHARED_WORK.iterdir() if job_id in p.name]
        assert len(workspaces) == 1, list(SHARED_WORK.iterdir())
        folder = workspaces[0].stat()
        assert (pwd.getpwuid(folder.st_uid).pw_name, folder.st_mode & 0o7777) == (ACCOUNT, 0o2770)
        assert _accounted(f"hpcgw-{job_id}") == ["alice|COMPLETED"]  # as the user, not hpcgw
        assert client.delete(job_url).status_code == 200
        eventually(lambda: not workspaces[0].exists(), 60, "the workspace to be removed")
    log = (gateway_tmp / "gateway.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    _doctor_knows_who_can_use_the_workspaces(config)


def _doctor_knows_who_can_use_the_workspaces(config: Path) -> None:
    """``hpcgw doctor --test-user`` as the service account: alice is in the workspace
    group; daemon is not, and an unknown login is named."""

    def workspace_line(user: str) -> str:
        done = subprocess.run(
            ["runuser", "-u", ACCOUNT, "--", sys.executable, "-m", "gateway.cli", "doctor",
             "--config", str(config), "--test-user", user],
            capture_output=True, text=True, timeout=120, cwd=config.parent,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        return next(line for line in done.stdout.splitlines() if " workspace dev " in line)

    assert workspace_line("alice").startswith("ok") and "jobs of alice can use it" in (
        workspace_line("alice")
    )
    refused = workspace_line("daemon")
    assert refused.startswith("FAIL") and "daemon is not in group hpcgw-work" in refused
    assert "no user 'nobody-here'" in workspace_line("nobody-here")
