"""The worker side's exception tree: what a failure means for the job, by class.

The worker decides from the *class* whether to retry a job later (with
:class:`~gateway.workflow.retry.RetryPolicy`'s backoff) or to fail it; the
message (``detail``) is safe to show to the job's owner::

    WorkerError                     base of the gateway's own worker-side errors
    ├── TransientError              retry later; the job is not at fault
    │   ├── TransientStagingError   (also a StagingError) source 5xx/timeout, S3 down
    │   │   └── InputNotOnline      nearline input: "accepted, come back later" (202,
    │   │                           503 + Retry-After); the job waits in the gateway
    │   └── TransientPublicationError (also a PublicationError) S3 unreachable, 5xx
    ├── StagingError                an input cannot be staged: the job fails (400)
    │   └── TransientStagingError
    └── PublicationError            outputs cannot be published/removed: the job fails
        └── TransientPublicationError

    hpc_adapters.errors.HpcError    the scheduler adapters' tree, same split:
    ├── TransientHpcError           retry later
    └── PermanentHpcError           fail the job

    gateway.egress.EgressError      an outbound request was refused by the policy
                                    (staging turns it into a permanent StagingError)

A ``StagingError`` or ``PublicationError`` that is not a :class:`TransientError`
is permanent. ``gateway.errors`` is the other tree: errors that become HTTP
answers, raised while a request is being served.
"""

from __future__ import annotations


class WorkerError(Exception):
    """Base of the worker side's errors. ``detail`` is safe to show to the job owner."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def transient(self) -> bool:
        """Whether a retry may succeed -- decided by the class, never by a flag."""
        return isinstance(self, TransientError)


class TransientError(WorkerError):
    """The operation may succeed later; the worker backs off and retries the job."""


class StagingError(WorkerError):
    """An input could not be staged; the job fails unless the error is transient."""


class TransientStagingError(StagingError, TransientError):
    """Staging failed for a reason that may pass (source 5xx, timeout, lost cache entry)."""


class InputNotOnline(TransientStagingError):
    """The source has the input on tape / nearline storage and is bringing it online.

    Answered as HTTP 202 Accepted, or 503 with ``Retry-After``. Not a failure:
    the dispatcher keeps the job waiting *in the gateway* (no Slurm job) and
    stages it again after ``retry_after`` seconds (or a backoff when the source
    gave none), up to the configured maximum wait
    (:meth:`gateway.workflow.retry.RetryPolicy.wait_for_input`).
    """

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class PublicationError(WorkerError):
    """Outputs could not be published or removed; the job fails unless transient."""


class TransientPublicationError(PublicationError, TransientError):
    """Publication failed for a reason that may pass (endpoint unreachable, throttling, 5xx)."""


def staging_error(detail: str, *, transient: bool) -> StagingError:
    """The staging error of the right class where the cause was read from an answer."""
    return TransientStagingError(detail) if transient else StagingError(detail)


def publication_error(detail: str, *, transient: bool) -> PublicationError:
    """The publication error of the right class where the cause was read from an answer."""
    return TransientPublicationError(detail) if transient else PublicationError(detail)
