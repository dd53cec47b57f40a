"""A real gateway for the benchmarks: ``hpcgw serve [--with-worker]`` on a free port.

Same approach as the end-to-end tests (own temporary config, own SQLite file or
PostgreSQL database, own workspace root), written here so the suite does not
import the tests. Also: bearer tokens from the development Keycloak
(``deploy/keycloak``, ``make keycloak``) when it answers and ``gateway.identity.oidc``
is available, and a peak-RSS sampler for the gateway's process tree.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

log = logging.getLogger("bench")

REPO = Path(__file__).resolve().parent.parent
SLURMRESTD = os.environ.get("SLURMRESTD_URL", "http://127.0.0.1:6820")
JWT_KEY = os.environ.get("SLURM_JWT_KEY", "/etc/slurm/jwt_hs256.key")
PG_ADMIN_URL = os.environ.get(
    "BENCH_PG_URL", "postgresql+psycopg://hpcgw:hpcgw@127.0.0.1:5432/hpcgw_test"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gateway_config(
    tmp: Path,
    port: int,
    *,
    db_url: str,
    work_root: Path,
    user: str,
    poll_interval: float,
    service_user: str = "hpcgw",
    auth: dict[str, Any] | None = None,
    workers: int = 2,
    threads: int = 8,
) -> dict[str, Any]:
    return {
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "base_url": f"http://127.0.0.1:{port}",
            "workers": workers,
            "threads": threads,
            "sync_timeout_seconds": 60,
        },
        "database": {"url": db_url},
        "auth": auth
        or {
            "mode": "none",
            "default_user": {"sub": f"bench-{user}", "username": user, "hpc_login": user},
        },
        "sites": {
            "dev": {
                "slurmrest": {
                    "url": SLURMRESTD,
                    "jwt_key_file": JWT_KEY,
                    "service_user": service_user,
                },
                "workspace_root": str(work_root),
                "pythonpath": str(REPO),
                "python": sys.executable,
            }
        },
        "worker": {"poll_interval_seconds": poll_interval, "backoff_base_seconds": 0.5},
        "publication": {"root": str(tmp / "published")},
    }


@dataclass
class GatewayProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    config_path: Path
    config: dict[str, Any]
    with_worker: bool = True
    #: Times the process was found dead (killed from outside) and started again.
    restarts: int = 0

    def restart(self) -> None:
        """Start the same gateway again (same config, store and port) after it died."""
        self.stop()
        fresh = start_gateway(self.config_path.parent, self.config, with_worker=self.with_worker)
        self.proc = fresh.proc
        self.restarts += 1
        log.warning("gateway on %s was restarted (%d so far)", self.url, self.restarts)

    def stop(self) -> None:
        started = time.monotonic()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        # the embedded worker may be restarted by `serve` while it shuts down: no leftovers
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        log.info("gateway on %s stopped in %.1fs", self.url, time.monotonic() - started)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def start_gateway(
    tmp: Path, config: dict[str, Any], *, with_worker: bool, env: dict[str, str] | None = None
) -> GatewayProcess:
    """Start ``hpcgw serve`` with ``config``; wait until ``/conformance`` answers."""
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    log_path = tmp / "gateway.log"
    if log_path.exists():  # a restart: keep the earlier log
        log_path.rename(tmp / f"gateway.{int(time.time())}.log")
    args = [sys.executable, "-m", "gateway.cli", "serve", "--config", str(path)]
    args.append("--with-worker" if with_worker else "--no-with-worker")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        )
    gw = GatewayProcess(
        f"http://127.0.0.1:{config['server']['port']}", proc, log_path, path, config, with_worker
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"{gw.url}/conformance", timeout=2).status_code == 200:
                return gw
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    gw.stop()
    raise RuntimeError(f"gateway did not start:\n{gw.log_tail()}")


@contextlib.contextmanager
def running_gateway(
    tmp: Path, config: dict[str, Any], *, with_worker: bool
) -> Iterator[GatewayProcess]:
    gw = start_gateway(tmp, config, with_worker=with_worker)
    try:
        yield gw
    finally:
        gw.stop()


# -- identity ---------------------------------------------------------------------


@dataclass
class Identity:
    """How the benchmark clients authenticate: real OIDC bearer tokens, or auth off."""

    mode: str  # "oidc" or "none"
    note: str
    auth_settings: dict[str, Any] | None = None
    sub: str | None = None
    user: str = "alice"
    issuer: str | None = None
    _token: str | None = None
    _token_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def headers(self) -> dict[str, str]:
        if self.mode != "oidc":
            return {}
        with self._lock:
            if self._token is None or time.monotonic() - self._token_at > 120:
                assert self.issuer is not None
                self._token = _password_token(self.issuer, self.user)
                self._token_at = time.monotonic()
            return {"Authorization": f"Bearer {self._token}"}

    def provision(self, db_url: str, hpc_login: str) -> None:
        """Map the token's subject to ``hpc_login`` (what ``hpcgw users sync`` would record)."""
        if self.mode != "oidc" or self.sub is None:
            return
        from gateway import db
        from gateway.identity.identity_map import IdentityStatus, IdentityStore

        db.upgrade(db_url)
        engine = db.make_engine(db_url)
        try:
            IdentityStore(engine).save(
                self.sub, self.user, hpc_login, IdentityStatus.ACTIVE, ["gep"]
            )
        finally:
            engine.dispose()

    def close(self) -> None:
        """Nothing to stop: Keycloak is shared and keeps running."""


def _password_token(issuer: str, user: str) -> str:
    resp = httpx.post(
        f"{issuer}/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": "ogc-gateway",
            "username": user,
            "password": user,
        },
        timeout=10,
    )
    resp.raise_for_status()
    return str(resp.json()["access_token"])


def make_identity(user: str, want_oidc: bool = True) -> Identity:
    """Real bearer tokens from the development Keycloak if it (and gateway.identity.oidc) work."""
    if not want_oidc:
        return Identity("none", "auth off (requested)")
    url = os.environ.get("HPCGW_KEYCLOAK_URL", "http://127.0.0.1:8180")
    issuer = f"{url}/realms/gep"
    try:
        import gateway.identity.oidc  # noqa: F401
        from gateway.settings import AuthSettings

        AuthSettings(mode="oidc")  # the settings tree knows the mode
        token = _password_token(issuer, user)
        import jwt

        sub = str(jwt.decode(token, options={"verify_signature": False})["sub"])
    except Exception as exc:  # any missing/broken piece: fall back, and say so
        return Identity(
            "none",
            f"auth off: no token from Keycloak at {issuer} (make keycloak): "
            f"{type(exc).__name__}: {exc}",
        )
    return Identity(
        "oidc",
        f"real RS256 bearer tokens from Keycloak ({issuer}), validated by the gateway "
        "(JWKS); HPC login row written directly instead of `hpcgw users sync`",
        auth_settings={"mode": "oidc", "oidc": {"issuer": issuer, "audience": ["ogc-gateway"]}},
        sub=sub,
        user=user,
        issuer=issuer,
    )


# -- memory -------------------------------------------------------------------------


class RssSampler:
    """Samples the RSS of a process tree every ``interval`` s; keeps the peak per role."""

    def __init__(self, root_pid: int, interval: float = 0.2) -> None:
        self.root_pid = root_pid
        self.interval = interval
        self.peak: dict[str, int] = {}
        self.peak_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.root_pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            per_role: dict[str, int] = {}
            for proc in procs:
                try:
                    rss = proc.memory_info().rss
                    cmd = " ".join(proc.cmdline())
                except psutil.Error:
                    continue
                if proc.pid == self.root_pid:
                    role = "api master (gunicorn arbiter)"
                elif "gateway.cli" in cmd and " worker" in cmd:
                    role = "worker"
                else:
                    role = "api worker (gunicorn, per process)"
                per_role[role] = max(per_role.get(role, 0), rss)
                total += rss
            for role, rss in per_role.items():
                self.peak[role] = max(self.peak.get(role, 0), rss)
            self.peak_total = max(self.peak_total, total)
            self._stop.wait(self.interval)

    def report(self) -> dict[str, Any]:
        mib = 1024 * 1024
        return {
            "peak_rss_mib": {k: round(v / mib, 1) for k, v in sorted(self.peak.items())},
            "peak_total_rss_mib": round(self.peak_total / mib, 1),
        }


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
