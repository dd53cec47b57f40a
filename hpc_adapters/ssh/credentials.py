"""Per-user SSH credentials: short-lived certificates from a gateway CA, or per-user key files.

:class:`CertificateSigner` (recommended) gives each HPC login a fresh in-memory
ed25519 key and an OpenSSH *user certificate* for it, signed by the gateway's
CA key with ``ssh-keygen -s`` (paramiko cannot sign certificates): principal =
the login, validity of a few minutes, no extensions (``-O clear``: no pty, no
forwarding). The login node's sshd trusts the CA (``TrustedUserCAKeys``), so
no per-user ``authorized_keys`` is needed and nothing long-lived leaks. The
private user key never touches the disk; only the public key is written to a
private temporary directory for ``ssh-keygen``. Certificates are cached per
login until ``renew_before`` seconds before they expire; connections that are
already open stay authenticated after that.

:class:`KeyFileCredentials` reads ``key_file_template.format(login=...)`` (plus
``<file>-cert.pub`` when present) for sites that hand out one key per user.

Both raise :class:`~hpc_adapters.errors.AuthenticationError` when no usable
credential exists for a login.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hpc_adapters.errors import AuthenticationError

_LOGIN = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def checked_login(login: str) -> str:
    """``login`` if it is a plausible unix login name; AuthenticationError otherwise."""
    if not _LOGIN.match(login):
        raise AuthenticationError(f"not a valid HPC login name: {login!r}")
    return login


class CredentialSource(Protocol):
    """Gives the private key (with certificate, if any) to log in as ``login``."""

    def key_for(self, login: str) -> paramiko.PKey:
        """Return a key for ``login``; AuthenticationError if there is none."""

    def describe(self) -> dict[str, str]:
        """Facts for ``hpcgw sites check`` (no secrets)."""


class CertificateSigner:
    """Short-lived OpenSSH user certificates signed with the gateway CA (see module doc)."""

    def __init__(
        self,
        ca_key_file: str,
        validity_minutes: int = 5,
        *,
        renew_before: int = 60,
        ssh_keygen: str = "ssh-keygen",
        clock: Callable[[], float] = time.time,
        run: Runner = subprocess.run,
    ) -> None:
        if validity_minutes < 1:
            raise ValueError("certificate validity must be at least one minute")
        self.ca_key_file = ca_key_file
        self.validity_minutes = validity_minutes
        self.renew_before = min(renew_before, validity_minutes * 30)
        self.ssh_keygen = ssh_keygen
        self._clock = clock
        self._run = run
        self._cache: dict[str, tuple[paramiko.PKey, float]] = {}
        self._lock = threading.Lock()
        self._serial = itertools.count(int(clock()))
        self.signed = 0

    def key_for(self, login: str) -> paramiko.PKey:
        login = checked_login(login)
        with self._lock:
            now = self._clock()
            cached = self._cache.get(login)
            if cached is not None and cached[1] - self.renew_before > now:
                return cached[0]
            key = self._sign(login, now)
            self._cache[login] = (key, now + self.validity_minutes * 60)
            self.signed += 1
            return key

    def _sign(self, login: str, now: float) -> paramiko.PKey:
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ).decode()
        public = private.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        serial = next(self._serial)
        with tempfile.TemporaryDirectory(prefix="hpcgw-cert-") as tmp:
            pub = Path(tmp, "user.pub")
            pub.write_bytes(public + f" hpcgw:{login}\n".encode())
            argv = [
                self.ssh_keygen,
                "-q",
                "-s",
                self.ca_key_file,
                "-I",
                f"hpcgw:{login}:{serial}",
                "-n",
                login,
                "-V",
                f"-1m:+{self.validity_minutes}m",
                "-z",
                str(serial),
                "-O",
                "clear",
                str(pub),
            ]
            try:
                done = self._run(argv, capture_output=True, text=True, timeout=30, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise AuthenticationError(f"cannot run {self.ssh_keygen}: {exc}") from exc
            if done.returncode != 0:
                detail = (done.stderr or done.stdout or "").strip()[:300]
                raise AuthenticationError(f"cannot sign an SSH certificate for {login}: {detail}")
            try:
                cert = Path(tmp, "user-cert.pub").read_text()
            except OSError as exc:
                raise AuthenticationError(f"ssh-keygen wrote no certificate: {exc}") from exc
        try:
            key = paramiko.Ed25519Key(file_obj=io.StringIO(pem))
            key.load_certificate(cert.strip())
        except (paramiko.SSHException, ValueError) as exc:
            raise AuthenticationError(f"unusable SSH certificate for {login}: {exc}") from exc
        return key

    def describe(self) -> dict[str, str]:
        return {
            "ssh_auth": "certificate",
            "ca_key_file": self.ca_key_file,
            "ca_key_readable": str(os.access(self.ca_key_file, os.R_OK)).lower(),
            "certificate_minutes": str(self.validity_minutes),
        }


class KeyFileCredentials:
    """Per-user private key files, ``template.format(login=login)`` (see module doc)."""

    def __init__(self, template: str) -> None:
        if "{login}" not in template:
            raise ValueError("the SSH key file template must contain '{login}'")
        self.template = template
        self._cache: dict[str, tuple[paramiko.PKey, float]] = {}
        self._lock = threading.Lock()

    def key_for(self, login: str) -> paramiko.PKey:
        path = self.template.format(login=checked_login(login))
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            raise AuthenticationError(f"no SSH key for {login!r} at {path}") from None
        with self._lock:
            cached = self._cache.get(login)
            if cached is not None and cached[1] == mtime:
                return cached[0]
            try:
                key = paramiko.PKey.from_path(path)
                if os.path.exists(f"{path}-cert.pub"):
                    key.load_certificate(f"{path}-cert.pub")
            except (OSError, paramiko.SSHException, ValueError) as exc:
                raise AuthenticationError(f"cannot load the SSH key {path}: {exc}") from exc
            self._cache[login] = (key, mtime)
            return key

    def describe(self) -> dict[str, str]:
        return {"ssh_auth": "key_file", "key_file_template": self.template}
