"""The one way tests wait for something: :func:`eventually`.

Tests that drive real services (Slurm, a worker thread, HTTP servers) wait for
a condition, never for a fixed time, and never assert how long something took
(timing belongs to ``bench/``). ``timeout`` is a generous bound that only a
broken system reaches; the failure names what was awaited and the last value
the probe saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None],
    timeout: float,
    what: str | Callable[[], str],
    *,
    every: float = 0.2,
) -> T:
    """Call ``probe`` every ``every`` seconds until it returns a truthy value; return it.

    Fails the test (not an error) after ``timeout`` seconds, saying it waited for
    ``what`` (a text, or a function giving one -- e.g. the job's last message).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = what() if callable(what) else what
            pytest.fail(f"waited {timeout:g}s for {text}; last seen: {value!r}", pytrace=False)
        time.sleep(every)
