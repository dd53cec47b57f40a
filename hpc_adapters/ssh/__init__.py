"""The SSH transport: Slurm's command-line tools on a login node, over paramiko.

* :mod:`.transport`, :mod:`.channel` — :class:`SshPool`: reused connections per login, keepalive,
  reconnect, bounded sessions, known_hosts verification, error mapping;
* :mod:`.credentials` — per-user identity: :class:`CertificateSigner` (short-lived
  certificates from the gateway CA) or :class:`KeyFileCredentials`;
* :mod:`.commands`, :mod:`.sacct` — one command object per verb (sbatch, squeue,
  scancel, sacct) and the pure parsers of their output;
* :mod:`.sftp` — :class:`SftpWorkspace`, workspace files acting as the user;
* :mod:`.adapter` — :class:`SshAdapter`, the :class:`~hpc_adapters.base.SchedulerAdapter`.
"""

from hpc_adapters.ssh.adapter import SshAdapter
from hpc_adapters.ssh.credentials import CertificateSigner, CredentialSource, KeyFileCredentials
from hpc_adapters.ssh.sftp import SftpWorkspace
from hpc_adapters.ssh.transport import PoolStats, SshPool

__all__ = [
    "CertificateSigner",
    "CredentialSource",
    "KeyFileCredentials",
    "PoolStats",
    "SftpWorkspace",
    "SshAdapter",
    "SshPool",
]
