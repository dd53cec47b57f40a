"""What every fetcher shares: the staging error, fetch results and the hashing sink."""

from __future__ import annotations

import email.utils
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

from gateway.backoff import backoff_delay

#: Bytes read or written per step: the memory a download needs, whatever its size.
from gateway.workflow.errors import InputNotOnline, StagingError, TransientStagingError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Validators:
    """What a source said about a version of its content, for revalidation."""

    etag: str | None = None
    last_modified: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.etag or self.last_modified)


@dataclass(frozen=True)
class FetchResult:
    """A completed fetch; ``not_modified`` means the given validators still hold."""

    size: int = 0
    sha256: str = ""
    validators: Validators = Validators()
    media_type: str | None = None
    not_modified: bool = False


class HashingSink:
    """Writes chunks to a file, hashing and counting them, within size and time limits.

    ``heartbeat(bytes_so_far)`` is called at most every ``heartbeat_seconds``
    (the dispatcher renews its job lease from it during long downloads).
    """

    def __init__(
        self,
        out: BinaryIO,
        label: str,
        max_bytes: int,
        deadline: float,
        heartbeat: Callable[[int], None] | None = None,
        heartbeat_seconds: float = 20.0,
    ) -> None:
        self.out = out
        self.label = label
        self.max_bytes = max_bytes
        self.deadline = deadline
        self.size = 0
        #: Strong ETag of the content being written, when the source can resume it.
        self.resume_etag: str | None = None
        self._hash = hashlib.sha256()
        self._heartbeat = heartbeat
        self._heartbeat_seconds = heartbeat_seconds
        self._last_beat = time.monotonic()

    def check_announced(self, length: int | None) -> None:
        """Refuse early when the announced length is already over the limit."""
        if length is not None and self.size + length > self.max_bytes:
            raise StagingError(
                f"{self.label}: {self.size + length} bytes exceed the "
                f"{self.max_bytes}-byte input limit"
            )

    @property
    def fd(self) -> int | None:
        """The descriptor of ``out`` when it is a real file (another process may write it)."""
        try:
            return self.out.fileno()
        except (AttributeError, OSError, ValueError):  # io.BytesIO: UnsupportedOperation
            return None

    def write(self, chunk: bytes) -> None:
        """Append ``chunk`` to the file (hashed, counted, within the limits)."""
        self.record(chunk)
        self.out.write(chunk)

    def record(self, chunk: bytes | memoryview) -> None:
        """Hash and count ``chunk`` that another writer already put in the file.

        Raises :class:`StagingError` beyond the size limit (permanent) or the
        deadline (transient), like :meth:`write`; calls the heartbeat.
        """
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise StagingError(f"{self.label}: larger than the {self.max_bytes}-byte input limit")
        now = time.monotonic()
        if now > self.deadline:
            raise TransientStagingError(f"{self.label}: download took too long")
        self._hash.update(chunk)
        if self._heartbeat and now - self._last_beat >= self._heartbeat_seconds:
            self._last_beat = now
            self._heartbeat(self.size)

    def restart(self) -> None:
        """Forget what was written (the source sent the whole content again)."""
        self.out.seek(0)
        self.out.truncate()
        self.size = 0
        self._hash = hashlib.sha256()

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


def backoff_or_give_up(
    url: str,
    reason: str,
    attempt: int,
    sink: HashingSink,
    *,
    retries: int,
    backoff_seconds: float,
    sleep: Callable[[float], None],
    log: Callable[..., None],
) -> None:
    """After failed ``attempt`` (1-based): raise a transient StagingError, or wait.

    Shared by the httpx and curl fetchers so both give up on the same terms
    (retry budget or the sink's overall deadline) and back off exponentially.
    """
    if attempt > retries or time.monotonic() > sink.deadline:
        raise TransientStagingError(f"{url}: {reason}")
    delay = backoff_delay(attempt, backoff_seconds)
    log("fetch %s: %s; retry %d in %.1fs", url, reason, attempt, delay)
    sleep(delay)


def retry_after_seconds(value: str | None) -> float | None:
    """An HTTP ``Retry-After`` (delay in seconds or an HTTP date) as seconds from now."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def not_online(url: str, status: int, retry_after: str | None) -> InputNotOnline | None:
    """The nearline answer of ``status`` (202, or 503 with ``Retry-After``), else None."""
    if status == 202:
        return InputNotOnline(f"{url} is being brought online by its source (HTTP 202)",
                              retry_after_seconds(retry_after))  # fmt: skip
    if status == 503 and retry_after:
        return InputNotOnline(
            f"{url} is not available yet (HTTP 503, Retry-After {retry_after})",
            retry_after_seconds(retry_after),
        )
    return None
