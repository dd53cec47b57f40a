"""A gateway made of real OS processes, any of which can be SIGKILLed and started again.

The fault tests (``tests/e2e/test_process_kills.py``) and the chaos benchmark
(``python -m bench.chaos``) run the gateway exactly as it is deployed:

* **one instance** -- ``hpcgw serve --with-worker`` (gunicorn + the embedded
  worker child, as the demo runs it) on a SQLite file;
* **a fleet** -- two ``hpcgw serve --no-with-worker`` and two ``hpcgw worker``
  on one PostgreSQL database, each API submitting to another cluster.

Each member is started in its own session (``start_new_session``), so a kill
is ``SIGKILL`` of the member's whole *process group*: gunicorn's arbiter, its
workers and the embedded worker die together, with no chance to clean up, as
in a power cut of that process. :meth:`Member.restart` starts it again with
the same configuration (same database, port and workspace root).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.gatewayproc import free_port, gateway_config

log = logging.getLogger("bench")

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Cluster:
    """One dev cluster of ``deploy/devcluster.sh``: its REST API and its own Slurm commands."""

    name: str
    rest_url: str
    jwt_key: str
    bin_dir: str
    slurm_conf: str
    partition: str

    def run(self, command: str, *args: str) -> str:
        """Run one of this cluster's Slurm commands; its standard output."""
        env = {**os.environ, "SLURM_CONF": self.slurm_conf}
        done = subprocess.run(
            [f"{self.bin_dir}/{command}", *args],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            timeout=120,
        )
        return done.stdout

    def site(self, work_root: Path) -> dict[str, Any]:
        """The gateway's ``sites:`` entry for this cluster."""
        return {
            "adapter": "slurmrest",
            "slurmrest": {"url": self.rest_url, "jwt_key_file": self.jwt_key},
            "workspace_root": str(work_root),
            "pythonpath": str(REPO),
            "python": sys.executable,
            "default_partition": self.partition,
        }


CLUSTERS = {
    c.name: c
    for c in (
        Cluster(
            "hpcgw",
            os.environ.get("SLURMRESTD_URL", "http://127.0.0.1:6820"),
            os.environ.get("SLURM_JWT_KEY", "/etc/slurm/jwt_hs256.key"),
            "/usr/bin",
            os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"),
            "debug",
        ),
        Cluster(
            "mesocentre",
            os.environ.get("MESOCENTRE_SLURMRESTD_URL", "http://127.0.0.1:6920"),
            os.environ.get("MESOCENTRE_JWT_KEY", "/etc/slurm-mesocentre/jwt_hs256.key"),
            os.environ.get("MESOCENTRE_SLURM_BIN", "/opt/slurm-24.11/bin"),
            os.environ.get("MESOCENTRE_SLURM_CONF", "/etc/slurm-mesocentre/slurm.conf"),
            "short",
        ),
    )
}


def fleet_config(
    tmp: Path, *, db_url: str, work_root: Path, default_site: str, user: str, lease_seconds: float
) -> dict[str, Any]:
    """One member's configuration (on a free port): both clusters declared, jobs sent to
    ``default_site``.

    Short leases (a killed worker's jobs are taken over after ``lease_seconds``)
    and quick usage reads keep a fault run short; everything else is the default.
    """
    config = gateway_config(
        tmp, free_port(), db_url=db_url, work_root=work_root, user=user, poll_interval=0.3
    )
    config.update(
        sites={name: c.site(work_root) for name, c in CLUSTERS.items()},
        default_site=default_site,
        worker={
            "poll_interval_seconds": 0.3,
            "backoff_base_seconds": 0.5,
            "backoff_max_seconds": 5.0,
            "lease_seconds": lease_seconds,
        },
        accounting={
            "usage_delay_seconds": 1.0,
            "usage_retry_seconds": 1.0,
            "usage_retry_max_seconds": 5.0,
            "usage_sweep_seconds": 5.0,
            "usage_lease_seconds": lease_seconds,
        },
        workflow={"cache": {"root": str(tmp / "cache")}},
    )
    return config


@dataclass
class Member:
    """One OS process group of the gateway: ``serve`` (API, maybe with a worker) or ``worker``."""

    name: str
    #: ``serve+worker``, ``serve`` or ``worker``.
    role: str
    folder: Path
    config: dict[str, Any]
    proc: subprocess.Popen[bytes] | None = None
    kills: int = 0
    starts: int = 0

    @property
    def url(self) -> str | None:
        if self.role == "worker":
            return None
        return str(self.config["server"]["base_url"])

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, timeout: float = 120.0) -> None:
        """Start the process group; for an API, wait until it answers ``/conformance``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / "gateway.yaml"
        path.write_text(yaml.safe_dump(self.config))
        args = [sys.executable, "-m", "gateway.cli"]
        if self.role == "worker":
            args += ["worker", "--config", str(path)]
        else:
            args += ["serve", "--config", str(path)]
            args.append("--with-worker" if self.role == "serve+worker" else "--no-with-worker")
        self.starts += 1
        with (self.folder / f"{self.name}.{self.starts}.log").open("wb") as out:
            self.proc = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                start_new_session=True,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
        if self.url is not None:
            self._wait_up(timeout)

    def _wait_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/conformance", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the whole process group, at once, and reap it."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.kills += 1
        log.warning("SIGKILL %s (pid %d, kill %d)", self.name, self.proc.pid, self.kills)

    def restart(self) -> None:
        self.kill_leftovers()
        self.start()

    def kill_leftovers(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM the group (SIGKILL after 10 s): the orderly end of a run."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.kill_leftovers()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def log_tail(self, chars: int = 3000) -> str:
        path = self.folder / f"{self.name}.{self.starts}.log"
        try:
            return path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Fleet:
    """The members of one gateway deployment, sharing one job store."""

    db_url: str
    members: list[Member] = field(default_factory=list)

    @property
    def api_urls(self) -> list[str]:
        return [m.url for m in self.members if m.url is not None]

    def start(self) -> None:
        """APIs first (the first one migrates the database), then the workers."""
        for member in sorted(self.members, key=lambda m: m.role == "worker"):
            member.start()

    def stop(self) -> None:
        for member in self.members:
            member.stop()

    def kills(self) -> dict[str, int]:
        return {m.name: m.kills for m in self.members}


def single_instance(tmp: Path, work_root: Path, user: str, site: str, lease: float) -> Fleet:
    """``hpcgw serve --with-worker`` on a SQLite file: the demo's deployment."""
    db_url = f"sqlite:///{tmp}/hpcgw.db"
    config = fleet_config(
        tmp, db_url=db_url, work_root=work_root, default_site=site, user=user, lease_seconds=lease
    )
    return Fleet(db_url, [Member("gateway", "serve+worker", tmp / "gateway", config)])


def two_by_two(tmp: Path, work_root: Path, user: str, db_url: str, lease: float) -> Fleet:
    """Two APIs (one per cluster) and two workers on one PostgreSQL database."""
    members = []
    sites = list(CLUSTERS)
    for i in (1, 2):
        site = sites[(i - 1) % len(sites)]
        api = fleet_config(
            tmp,
            db_url=db_url,
            work_root=work_root,
            default_site=site,
            user=user,
            lease_seconds=lease,
        )
        members.append(Member(f"api-{i}", "serve", tmp / f"api-{i}", api))
    for i in (1, 2):
        config = dict(members[0].config)
        members.append(Member(f"worker-{i}", "worker", tmp / f"worker-{i}", config))
    return Fleet(db_url, members)
