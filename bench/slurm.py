"""Raw Slurm access for the benchmarks: slurmrestd without the gateway, ``sdiag``, clean-up.

Every raw job the suite submits is named ``bench-<run>-...`` so that
:func:`cancel_named` can remove exactly the suite's own jobs (the dev cluster is
shared with other people's tests).
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from hpc_adapters.base import HpcIdentity, JobSpec
from hpc_adapters.slurm.dialects import dialect_for
from hpc_adapters.slurmrest import MintingTokenSource

FINAL = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
}


class RawSlurm:
    """slurmrestd straight from a client: submit, poll one job, cancel (thread-safe)."""

    def __init__(self, url: str, key_file: str, api_version: str = "v0.0.38") -> None:
        self.url = url.rstrip("/")
        self.dialect = dialect_for(api_version)
        self.version = api_version
        self.tokens = MintingTokenSource(key_file, 3600)
        self._local = threading.local()

    def _client(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(timeout=60)
            self._local.client = client
        return client

    def _headers(self, user: str) -> dict[str, str]:
        return {
            "X-SLURM-USER-NAME": user,
            "X-SLURM-USER-TOKEN": self.tokens.token_for(HpcIdentity(user)),
        }

    def submit_body(
        self,
        name: str,
        script: str,
        workdir: str,
        *,
        memory_mb: int = 100,
        hold: bool = False,
        stdout: str = "slurm-%j.out",
        stderr: str | None = None,
    ) -> dict[str, Any]:
        spec = JobSpec(
            name=name,
            script=script,
            workdir=workdir,
            memory_mb=memory_mb,
            time_limit_minutes=5,
            stdout=stdout,
            stderr=stderr or stdout,
        )
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir}
        body = self.dialect.submit_body(spec, env)
        if hold:
            body["job"]["hold"] = True
        return body

    def submit(self, user: str, body: dict[str, Any]) -> str:
        resp = self._client().post(
            f"{self.url}/slurm/{self.version}/job/submit", headers=self._headers(user), json=body
        )
        data = resp.json()
        job_id = data.get("job_id")
        if job_id is None:
            raise RuntimeError(f"raw submit failed (HTTP {resp.status_code}): {data.get('errors')}")
        return str(job_id)

    def state(self, user: str, job_id: str) -> str | None:
        """``job_state`` of one job from slurmctld (None once it was purged)."""
        resp = self._client().get(
            f"{self.url}/slurm/{self.version}/job/{job_id}", headers=self._headers(user)
        )
        jobs = resp.json().get("jobs") or []
        return str(jobs[0].get("job_state")) if jobs else None

    def wait_final(self, user: str, job_id: str, poll: float, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state(user, job_id)
            if state in FINAL:
                return state
            time.sleep(poll)
        raise TimeoutError(f"raw job {job_id} not final after {timeout} s")

    def list_jobs(self, user: str) -> tuple[float, int, int]:
        """``GET /slurm/.../jobs`` as the monitor makes it: (seconds, bytes, jobs listed)."""
        start = time.perf_counter()
        resp = self._client().get(
            f"{self.url}/slurm/{self.version}/jobs", headers=self._headers(user)
        )
        body = resp.content
        elapsed = time.perf_counter() - start
        return elapsed, len(body), len(resp.json().get("jobs") or [])

    def cancel(self, user: str, job_id: str) -> None:
        self._client().delete(
            f"{self.url}/slurm/{self.version}/job/{job_id}", headers=self._headers(user)
        )


# -- sdiag ----------------------------------------------------------------------

_RPC_LINE = re.compile(
    r"^\s*(?P<name>\S+)\s+\(\s*(?P<id>-?\d+)\)\s+count:(?P<count>\d+)\s+"
    r"ave_time:(?P<ave>\d+)\s+total_time:(?P<total>\d+)"
)


@dataclass
class RpcStats:
    by_type: dict[str, tuple[int, int]]  # name -> (count, total_time µs)
    by_user: dict[str, tuple[int, int]]

    @property
    def total(self) -> int:
        return sum(c for c, _ in self.by_type.values())

    @property
    def total_time_us(self) -> int:
        return sum(t for _, t in self.by_type.values())

    def count_for_user(self, user: str) -> int:
        return self.by_user.get(user, (0, 0))[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "total_time_us": self.total_time_us,
            "by_type": {k: {"count": c, "total_time_us": t} for k, (c, t) in self.by_type.items()},
            "by_user": {k: {"count": c, "total_time_us": t} for k, (c, t) in self.by_user.items()},
        }


def sdiag_reset() -> None:
    """``sdiag -r`` (root): zero slurmctld's RPC counters."""
    subprocess.run(["sdiag", "-r"], check=True, capture_output=True, timeout=30)


def sdiag_rpcs() -> RpcStats:
    """slurmctld RPC counters since the last reset (``sdiag`` itself is not counted)."""
    out = subprocess.run(["sdiag"], check=True, capture_output=True, text=True, timeout=30).stdout
    section = None
    by_type: dict[str, tuple[int, int]] = {}
    by_user: dict[str, tuple[int, int]] = {}
    for line in out.splitlines():
        if "statistics by message type" in line:
            section = by_type
            continue
        if "statistics by user" in line:
            section = by_user
            continue
        if line.startswith("Pending RPC"):
            section = None
            continue
        match = _RPC_LINE.match(line)
        if match and section is not None:
            section[match["name"]] = (int(match["count"]), int(match["total"]))
    # sdiag's own REQUEST_STATS_INFO is counted after the snapshot it prints
    return RpcStats(by_type, by_user)


# -- clean-up -------------------------------------------------------------------


def squeue_jobs() -> list[tuple[str, str, str]]:
    """(job id, name, user) of every job slurmctld still lists."""
    out = subprocess.run(
        ["squeue", "-h", "-a", "-o", "%i|%j|%u"], capture_output=True, text=True, timeout=60
    ).stdout
    rows = []
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            rows.append((parts[0], parts[1], parts[2]))
    return rows


def cancel_ids(job_ids: list[str]) -> None:
    for start in range(0, len(job_ids), 200):
        chunk = job_ids[start : start + 200]
        if chunk:
            subprocess.run(["scancel", *chunk], capture_output=True, timeout=120)


def cancel_named(prefix: str) -> int:
    """scancel every queued/running job whose name starts with ``prefix``."""
    ids = [j for j, name, _ in squeue_jobs() if name.startswith(prefix)]
    cancel_ids(ids)
    return len(ids)


def wait_gone(job_ids: set[str], timeout: float = 120) -> bool:
    """Wait until none of ``job_ids`` is pending or running any more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["squeue", "-h", "-t", "PD,R,CG,S", "-o", "%i"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        if not job_ids & set(out.split()):
            return True
        time.sleep(1)
    return False
