"""A small thread-safe cache with a time to live, for lookups on the submission path.

Each ``POST .../execution`` quotes the run (the process's recent run times)
and finds the caller's Slurm account; both change rarely, so each API process
keeps them for a short while instead of asking the database on every request.
A ``ttl`` of 0 turns caching off.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Entries kept at most; beyond it the cache is emptied (it refills on demand).
MAX_ENTRIES = 10_000


class TtlCache(Generic[K, V]):
    """``get(key, load)``: the value loaded less than ``ttl`` seconds ago, else ``load()``."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K, load: Callable[[], V]) -> V:
        """The cached value of ``key``, or ``load()``'s (cached when ``ttl`` > 0)."""
        if self.ttl <= 0:
            return load()
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = load()  # outside the lock: a slow load does not block other keys
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (now + self.ttl, value)
        return value

    def forget(self, predicate: Callable[[K], bool] | None = None) -> None:
        """Drop the entries whose key matches ``predicate`` (all without one)."""
        with self._lock:
            if predicate is None:
                self._entries.clear()
            else:
                for key in [k for k in self._entries if predicate(k)]:
                    del self._entries[key]
