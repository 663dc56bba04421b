"""Limits: the shared state of rate and concurrency limits, kept in the broker's store.

A task declared with ``rate_limit=`` or ``max_concurrency=`` (``hurtle.schedule.limits``)
is limited across every worker process on every machine, so the state that
decides lives where all of them reach it: the broker's own store (memory,
SQLite, Redis), else the app's result store (RabbitMQ with ``results=``).

Two atomic steps, each one transaction on SQLite and one Lua script on Redis:

- ``take_rate``: a GCRA (generic cell rate algorithm, a token bucket kept as one
  number): permits come one per ``interval``; up to ``burst`` may be taken at
  once after a quiet spell. With ``burst=1`` they are evenly spaced, so no window
  of ``count * interval`` seconds ever holds more than ``count``. It answers how
  long until the next permit, so a caller over the limit knows exactly when to
  come back.
- ``acquire``: a counting semaphore whose permits are leases. A holder renews its
  permits (``renew``) while it runs and gives them back (``release``) when done;
  one that dies stops renewing and its permits expire after ``ttl``, so a crash
  never holds a permit for ever.
"""

from __future__ import annotations

import abc
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: Seconds a permit may come early: unix times in floats are exact to about 0.2 us, so
#: without it a permit due now could read as 0.999... of one, and its caller be sent
#: back with a wait of nothing, again and again.
_EARLY = 1e-6


@dataclass(frozen=True, slots=True)
class RateTake:
    """What ``take_rate`` gave: ``granted`` permits, and ``wait``, the seconds until
    the next one (0.0 when one is free now)."""

    granted: int
    wait: float


def gcra_take(tat: float, now: float, interval: float, burst: int, count: int) -> tuple[RateTake, float]:
    """The GCRA step on a theoretical arrival time ``tat`` (when the bucket is next
    empty, in seconds): what ``count`` asked for gets, and the new ``tat``. Pure:
    the memory and SQLite stores share it; ``rate_take.lua`` is the same arithmetic."""
    tat = max(tat, now)
    fits = math.floor((burst * interval - (tat - now) + _EARLY) / interval)
    granted = max(0, min(fits, count))
    tat += granted * interval
    wait = max(0.0, tat - (burst - 1) * interval - now)
    return RateTake(granted, wait), tat


class LimitStore(abc.ABC):
    """Rate buckets and permit sets, by key. Every step is atomic across processes."""

    @abc.abstractmethod
    async def take_rate(self, key: str, interval: float, burst: int, count: int) -> RateTake:
        """Take up to ``count`` permits of the rate ``key``: one per ``interval``
        seconds, at most ``burst`` at once. Atomic: two callers never get the same
        permit. A key not used for a while forgets itself."""

    @abc.abstractmethod
    async def acquire(self, key: str, holders: Sequence[str], limit: int, ttl: float) -> int:
        """Give a permit of ``key`` to each of the first ``holders`` (in order) while
        fewer than ``limit`` live permits are held; return how many got one. A permit
        lives ``ttl`` seconds unless renewed. Atomic across processes."""

    @abc.abstractmethod
    async def renew(self, permits: Mapping[str, Sequence[str]], ttl: float) -> None:
        """Renew the permits of these holders (by key) for ``ttl`` seconds from now.
        A permit that expired meanwhile is not taken back (another may hold it now)."""

    @abc.abstractmethod
    async def release(self, permits: Mapping[str, Sequence[str]]) -> None:
        """Give back the permits of these holders (by key). Idempotent."""

    @abc.abstractmethod
    async def held(self, key: str) -> int:
        """How many live permits of ``key`` are held now."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close connections. Idempotent."""


class MemoryLimits(LimitStore):
    """Limits in this process's memory: for tests, and the memory broker (whose broker
    objects of one name, on any thread, share one)."""

    def __init__(self) -> None:
        self._rates: dict[str, float] = {}
        self._permits: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    async def take_rate(self, key: str, interval: float, burst: int, count: int) -> RateTake:
        with self._lock:
            tat = self._rates.get(key, 0.0)
            taken, self._rates[key] = gcra_take(tat, time.time(), interval, burst, count)
            return taken

    async def acquire(self, key: str, holders: Sequence[str], limit: int, ttl: float) -> int:
        now = time.time()
        with self._lock:
            live = self._live(key, now)
            given = max(0, min(len(holders), limit - len(live)))
            for holder in holders[:given]:
                live[holder] = now + ttl
            return given

    def _live(self, key: str, now: float) -> dict[str, float]:
        live = {h: until for h, until in self._permits.get(key, {}).items() if until > now}
        self._permits[key] = live
        return live

    async def renew(self, permits: Mapping[str, Sequence[str]], ttl: float) -> None:
        now = time.time()
        with self._lock:
            for key, holders in permits.items():
                live = self._live(key, now)
                for holder in holders:
                    if holder in live:
                        live[holder] = now + ttl

    async def release(self, permits: Mapping[str, Sequence[str]]) -> None:
        with self._lock:
            for key, holders in permits.items():
                live = self._permits.get(key, {})
                for holder in holders:
                    live.pop(holder, None)

    async def held(self, key: str) -> int:
        with self._lock:
            return len(self._live(key, time.time()))

    async def close(self) -> None:
        pass
