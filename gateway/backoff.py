"""The one retry policy of the gateway: exponential backoff and the retryable HTTP statuses.

Every retry loop -- the worker's transient cluster errors, input downloads
(httpx and curl), subscriber callbacks, usage reads from Slurm accounting and
the embedded worker's restarts -- spaces its attempts with :func:`backoff_delay`
and, where it talks HTTP, retries exactly the statuses in :data:`RETRYABLE_STATUS`.
"""

from __future__ import annotations

#: Answers worth trying again later: timeout, too early, throttled, server-side trouble.
RETRYABLE_STATUS: frozenset[int] = frozenset({408, 425, 429, 500, 502, 503, 504})

#: Beyond this many doublings the delay is the cap anyway (keeps the power small).
_MAX_DOUBLINGS = 32


def backoff_delay(attempt: int, base: float, cap: float | None = None) -> float:
    """Seconds to wait after failed ``attempt`` (1-based): ``base * 2**(attempt-1)``.

    Attempts below 1 count as 1; the result is at most ``cap`` when given.
    """
    delay = base * 2 ** min(max(attempt - 1, 0), _MAX_DOUBLINGS)
    return float(delay if cap is None else min(cap, delay))
