"""What only the pyslurm adapter needs checked on the real cluster, beyond the contract suite.

* A site whose slurmctld cannot be reached is a TransportError (transient),
  not a rejected job. libslurm reads slurm.conf once per process, so this runs
  in a subprocess whose ``SLURM_CONF`` points at a copy naming a dead port.
* libslurm acts as this process (root), which could cancel anyone's job: the
  adapter refuses to cancel bob's job for alice, and the job keeps running.
* Site settings ``adapter: pyslurm`` build a working adapter.

Skipped when pyslurm is not installed (``deploy/install-pyslurm.sh``) unless
``HPCGW_REQUIRE_PYSLURM=1``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.settings import SiteSettings
from gateway.sites import build_adapter
from hpc_adapters.base import HpcIdentity, JobSpec, SchedulerState
from hpc_adapters.errors import AuthenticationError
from hpc_adapters.localfs import LocalWorkspace
from hpc_adapters.pyslurm_adapter import PyslurmAdapter, PyslurmUnavailable
from tests.conftest import REPO, WORK_ROOT, require_root, squeue_ids
from tests.polling import eventually

pytestmark = pytest.mark.slurm
SLURM_CONF = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"))


@pytest.fixture
def pyslurm_adapter(cluster: str) -> PyslurmAdapter:
    require_root("pyslurm submits as other users only from root")
    try:
        return PyslurmAdapter("dev", lambda identity: LocalWorkspace(str(WORK_ROOT), identity))
    except PyslurmUnavailable as exc:
        if os.environ.get("HPCGW_REQUIRE_PYSLURM") == "1":
            raise
        pytest.skip(f"pyslurm not installed: {exc}")


@pytest.fixture
def bobs_job(pyslurm_adapter: PyslurmAdapter) -> Iterator[str]:
    """A running job of bob's, cancelled at teardown."""
    bob = HpcIdentity("bob")
    workdir = f"{WORK_ROOT}/pyslurm-{uuid.uuid4().hex[:12]}"
    files = pyslurm_adapter.files(bob)
    files.mkdir(workdir)
    job_id = pyslurm_adapter.submit(
        JobSpec(name="pyslurm-owner", script="sleep 120", workdir=workdir, time_limit_minutes=3),
        bob,
    )
    yield job_id
    subprocess.run(["scancel", job_id], capture_output=True)
    files.remove_tree(workdir)


def test_cancel_of_another_users_job_is_refused(
    pyslurm_adapter: PyslurmAdapter, bobs_job: str
) -> None:
    with pytest.raises(AuthenticationError, match="does not belong to alice"):
        pyslurm_adapter.cancel(bobs_job, HpcIdentity("alice"))
    status = pyslurm_adapter.statuses([bobs_job])[bobs_job]
    assert status.user == "bob" and status.state.active
    pyslurm_adapter.cancel(bobs_job, HpcIdentity("bob"))
    eventually(lambda: bobs_job not in squeue_ids(), 30, "bob's job to leave squeue", every=0.5)
    assert pyslurm_adapter.statuses([bobs_job])[bobs_job].state is SchedulerState.CANCELLED


def test_site_settings_build_a_pyslurm_adapter(pyslurm_adapter: PyslurmAdapter) -> None:
    adapter = build_adapter("dev", SiteSettings(adapter="pyslurm"))
    assert isinstance(adapter, PyslurmAdapter)
    facts = adapter.check()
    assert facts["slurm_release"].startswith("22.05")
    assert int(facts["jobs_in_controller"]) >= 0


UNREACHABLE_PROBE = textwrap.dedent(
    """
    from hpc_adapters.base import HpcIdentity, JobSpec
    from hpc_adapters.errors import TransportError
    from hpc_adapters.pyslurm_adapter import PyslurmAdapter

    adapter = PyslurmAdapter("gone", lambda identity: None)
    calls = {
        "statuses": lambda: adapter.statuses(["1"]),
        "submit": lambda: adapter.submit(
            JobSpec("x", "true", "/tmp/never"), HpcIdentity("alice")
        ),
        "check": adapter.check,
    }
    for name, call in calls.items():
        try:
            call()
            print(name, "no error")
        except TransportError as exc:
            print(name, "TransportError", exc.detail)
        except Exception as exc:
            print(name, type(exc).__name__, exc)
    """
)


def test_unreachable_controller_is_a_transport_error(
    pyslurm_adapter: PyslurmAdapter, tmp_path: Path
) -> None:
    conf = SLURM_CONF.read_text()
    conf = re.sub(r"(?m)^SlurmctldPort=.*$", "SlurmctldPort=1", conf)
    conf = re.sub(r"(?m)^MessageTimeout=.*$", "MessageTimeout=2", conf)
    if "SlurmctldPort=1" not in conf:
        conf += "\nSlurmctldPort=1\n"
    (tmp_path / "slurm.conf").write_text(conf)
    env = {**os.environ, "SLURM_CONF": str(tmp_path / "slurm.conf"), "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", UNREACHABLE_PROBE],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert set(lines) == {"statuses", "submit", "check"}, out.stdout
    for name, result in lines.items():
        assert result.startswith("TransportError"), (name, result)
