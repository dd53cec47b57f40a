"""The adapter exception tree.

Every error an adapter raises is one of these; the gateway decides what to do
from the *class*, never from the message::

    HpcError
    ├── TransientHpcError      retry later with backoff; the job is not at fault
    │   ├── TransportError     connection refused/reset, timeout, DNS, TLS
    │   └── SchedulerBusyError slurmctld/slurmdbd not answering, HTTP 502/503/504
    └── PermanentHpcError      retrying cannot help; fail the job with the message
        ├── AuthenticationError the site refused our credentials for this user
        ├── JobRejectedError    the scheduler refused the job (bad partition, limits)
        ├── InvalidJobError     the scheduler does not know this job id
        ├── WorkspaceError      a workspace path is invalid or not accessible
        └── UnsupportedApiError the site's API offers no version this adapter speaks

An adapter must never let a library exception (httpx, paramiko, OSError)
escape un-wrapped: wrap it in the right branch so callers can rely on the tree.
"""

from __future__ import annotations


class HpcError(Exception):
    """Base of every adapter error. ``detail`` is safe to show to the job owner."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class TransientHpcError(HpcError):
    """The operation may succeed if retried later (the gateway backs off)."""


class TransportError(TransientHpcError):
    """The transport to the site failed (connection, timeout, protocol)."""


class SchedulerBusyError(TransientHpcError):
    """The scheduler answered that it cannot serve the request right now."""


class PermanentHpcError(HpcError):
    """Retrying cannot help; the job that caused it should fail."""


class AuthenticationError(PermanentHpcError):
    """The site refused the credentials presented for a user."""


class JobRejectedError(PermanentHpcError):
    """The scheduler refused the job description (limits, partition, account)."""


class InvalidJobError(PermanentHpcError):
    """The scheduler does not know the job id (neither live nor in accounting)."""


class WorkspaceError(PermanentHpcError):
    """A workspace path is invalid, escapes its root, or cannot be accessed."""


class UnsupportedApiError(PermanentHpcError):
    """The site answers, but in no API version this adapter speaks (e.g. a
    slurmrestd whose OpenAPI versions are all unknown to the dialect table).

    ``offered`` lists what the site offers, ``supported`` what we speak, so the
    operator can tell an old release from a new one.
    """

    def __init__(self, detail: str, offered: tuple[str, ...], supported: tuple[str, ...]) -> None:
        super().__init__(detail)
        self.offered = offered
        self.supported = supported
