"""Tallies: named counters kept in the broker's store, merged by adding.

Profiles (``hurtle.profiling``) and other figures gathered by every worker
process are written as increments to a *tally*: a key holding integer fields.
Two processes adding to the same key merge their figures, whatever machine
they run on, so a reader sees the sum over the whole deployment with one read
and no process has to gather anything from the others.

Each store keeps a key for ``ttl`` seconds after its last write.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Mapping, Sequence


class TallyStore(abc.ABC):
    """Keys of integer fields, added to atomically."""

    @abc.abstractmethod
    async def add(
        self, key: str, counts: Mapping[str, int], ttl: float, *, highest: Mapping[str, int] | None = None
    ) -> None:
        """Add each of ``counts`` to its field (a missing field counts from 0) and
        raise each of ``highest`` to at least its value, in one atomic step; the
        key then lives ``ttl`` seconds more. Counts may be negative. An add of no
        fields changes nothing."""

    @abc.abstractmethod
    async def read(self, key: str) -> dict[str, int]:
        """Every field of ``key``; empty when there is no such key (or it expired)."""

    @abc.abstractmethod
    async def read_many(self, keys: Sequence[str]) -> list[dict[str, int]]:
        """Every field of each of ``keys``, in their order (empty for a missing or
        expired key), in as few round trips as the store allows: a reader of many
        keys (the task history reads one per minute) pays one, not one per key.
        Not a snapshot: an add landing meanwhile may show in some keys only."""

    @abc.abstractmethod
    async def keys(self, prefix: str) -> list[str]:
        """The live keys starting with ``prefix``, sorted."""

    @abc.abstractmethod
    async def delete(self, keys: Sequence[str]) -> None:
        """Remove ``keys`` and all their fields."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close connections. Idempotent."""


class MemoryTallies(TallyStore):
    """Tallies in this process's memory: for tests, and the memory broker (whose
    broker objects of one name, on any thread, share one)."""

    def __init__(self) -> None:
        self._keys: dict[str, tuple[float, dict[str, int]]] = {}
        self._lock = threading.Lock()

    def _live(self, key: str) -> dict[str, int] | None:
        entry = self._keys.get(key)
        if entry is None:
            return None
        if entry[0] <= time.time():
            del self._keys[key]
            return None
        return entry[1]

    async def add(
        self, key: str, counts: Mapping[str, int], ttl: float, *, highest: Mapping[str, int] | None = None
    ) -> None:
        if not counts and not highest:
            return
        with self._lock:
            fields = self._live(key) or {}
            for name, value in counts.items():
                fields[name] = fields.get(name, 0) + int(value)
            for name, value in (highest or {}).items():
                fields[name] = max(fields.get(name, int(value)), int(value))
            self._keys[key] = (time.time() + ttl, fields)

    async def read(self, key: str) -> dict[str, int]:
        with self._lock:
            return dict(self._live(key) or {})

    async def read_many(self, keys: Sequence[str]) -> list[dict[str, int]]:
        with self._lock:
            return [dict(self._live(key) or {}) for key in keys]

    async def keys(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(k for k in list(self._keys) if k.startswith(prefix) and self._live(k) is not None)

    async def delete(self, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self._keys.pop(key, None)

    async def close(self) -> None:
        pass

