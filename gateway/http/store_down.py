"""The job store cannot be reached: every surface answers 503 with ``Retry-After``.

During a database outage (PostgreSQL restarted, the network to it cut, the
pool exhausted, SQLite locked beyond its timeout) SQLAlchemy raises one of
:data:`gateway.db.STORE_DOWN`. Without this the request would end in the generic
"unexpected error" 500; it is not a bug of the request nor of the server but
a wait, so clients are told to retry. Nothing half-done is kept: the job row
is written in one transaction, so a request that failed here created nothing.
The engine's pool pre-ping replaces dead connections once the store is back.
"""

from __future__ import annotations

import logging

from gateway.db import STORE_DOWN
from gateway.errors import ServiceUnavailable

__all__ = ["RETRY_AFTER_SECONDS", "STORE_DOWN", "store_unavailable"]

log = logging.getLogger(__name__)

#: Seconds a client is asked to wait before retrying.
RETRY_AFTER_SECONDS = 5


def store_unavailable(exc: Exception) -> ServiceUnavailable:
    """The 503 to answer for ``exc`` (one of :data:`STORE_DOWN`); logged, without SQL."""
    log.error("job store unavailable: %s", type(exc).__name__, exc_info=exc)
    return ServiceUnavailable(
        "the job store cannot be reached right now; nothing was changed, try again shortly",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )
