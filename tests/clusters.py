"""The dev environment's two Slurm clusters, as the tests see them.

``deploy/devcluster.sh`` runs ``hpcgw`` (Debian's Slurm 22.05, slurmrestd
v0.0.38 on :6820, login node sshd :2222) and ``mesocentre`` (Slurm 24.11 built
from Debian 13's source, slurmrestd v0.0.40-v0.0.42 on :6920, sshd :2223).
Each :class:`DevCluster` knows where its REST API, JWT key and login node are,
and runs *its own* Slurm commands (``sacct``, ``squeue``...) so tests
cross-check an adapter's answers with the cluster it talked to.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass

import pytest

from tests.polling import eventually


@dataclass(frozen=True)
class DevCluster:
    """One dev cluster: its endpoints and its own Slurm client commands."""

    name: str
    #: Release prefix its daemons report (``22.05``, ``24.11``).
    release: str
    rest_url: str
    #: The newest slurmrestd dialect it serves (what ``api_version: auto`` picks).
    api_version: str
    jwt_key: str
    ssh_port: int
    bin_dir: str
    slurm_conf: str
    partition: str

    def run(self, command: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run one of this cluster's Slurm commands (``sacct``, ``squeue``, ...)."""
        env = {**os.environ, "SLURM_CONF": self.slurm_conf}
        return subprocess.run(
            [f"{self.bin_dir}/{command}", *args],
            capture_output=True,
            text=True,
            check=check,
            env=env,
            timeout=60,
        )

    def sacct_field(self, job_id: str, field: str) -> str:
        """One accounting field of a job, straight from this cluster's ``sacct``."""
        return self.run("sacct", "-j", job_id, "-X", "-n", "-P", "-o", field).stdout.strip()

    def sacct_settled(self, job_id: str, field: str, expected: str, timeout: float = 30) -> str:
        """Poll ``sacct`` until ``field`` reads ``expected`` (slurmdbd lags the controller);
        the last value read when it never does (the caller's assertion shows it)."""
        seen: list[str] = []

        def settled() -> bool:
            seen.append(self.sacct_field(job_id, field))
            return seen[-1] == expected

        with contextlib.suppress(pytest.fail.Exception):
            eventually(settled, timeout, f"sacct {field} of {job_id} to read {expected}", every=0.5)
        return seen[-1]

    def squeue_ids(self) -> set[str]:
        return set(self.run("squeue", "-h", "-o", "%i").stdout.split())

    def in_controller(self, job_id: str) -> bool:
        """True while slurmctld still has the job (``scontrol show job``)."""
        out = self.run("scontrol", "-o", "show", "job", job_id, check=False)
        return out.returncode == 0 and f"JobId={job_id}" in out.stdout

    def node_cpus(self) -> int:
        return max(int(x) for x in self.run("sinfo", "-h", "-o", "%c").stdout.split())

    def scancel(self, *job_ids: str) -> None:
        if job_ids:
            self.run("scancel", *job_ids, check=False)


HPCGW = DevCluster(
    name="hpcgw",
    release="22.05",
    rest_url=os.environ.get("SLURMRESTD_URL", "http://127.0.0.1:6820"),
    api_version="v0.0.38",
    jwt_key=os.environ.get("SLURM_JWT_KEY", "/etc/slurm/jwt_hs256.key"),
    ssh_port=int(os.environ.get("HPCGW_SSH_PORT", "2222")),
    bin_dir="/usr/bin",
    slurm_conf=os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"),
    partition="debug",
)
MESOCENTRE = DevCluster(
    name="mesocentre",
    release="24.11",
    rest_url=os.environ.get("MESOCENTRE_SLURMRESTD_URL", "http://127.0.0.1:6920"),
    api_version="v0.0.42",
    jwt_key=os.environ.get("MESOCENTRE_JWT_KEY", "/etc/slurm-mesocentre/jwt_hs256.key"),
    ssh_port=int(os.environ.get("MESOCENTRE_SSH_PORT", "2223")),
    bin_dir=os.environ.get("MESOCENTRE_SLURM_BIN", "/opt/slurm-24.11/bin"),
    slurm_conf=os.environ.get("MESOCENTRE_SLURM_CONF", "/etc/slurm-mesocentre/slurm.conf"),
    partition="short",
)
CLUSTERS = {c.name: c for c in (HPCGW, MESOCENTRE)}


def cluster_problem(cluster: DevCluster) -> str | None:
    """Why ``cluster`` cannot be used right now, or None when it answers."""
    import httpx

    if not os.path.exists(cluster.jwt_key):
        return f"{cluster.name}: no Slurm JWT key at {cluster.jwt_key}"
    if not os.path.exists(f"{cluster.bin_dir}/sbatch"):
        return f"{cluster.name}: Slurm client tools are not installed in {cluster.bin_dir}"
    try:
        httpx.get(f"{cluster.rest_url}/openapi/v3", timeout=3)
    except httpx.HTTPError as exc:
        return f"{cluster.name}: slurmrestd not reachable at {cluster.rest_url}: {exc}"
    return None
