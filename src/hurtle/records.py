"""Records: short-lived bytes under a key, kept in the broker's store.

Where tallies (``hurtle.tallies``) merge integers from every process, a record
belongs to one writer, which replaces it whole at each ``put``: the worker
registry (``hurtle.observe.registry``) is one record per worker process,
written every few seconds with a time to live, so a process that stops writing
disappears by itself and a reader sees only the living.

``put_if`` is the one atomic step: periodic tasks (``hurtle.schedule``) elect
their leader with it (a lease taken if free, expired or already ours) and move
each schedule's last tick forward with it (a compare-and-set), so two workers
that read the same value never both win.

``gather`` is the other: a set of members kept under one key, each member's
first value kept, counted atomically. A chord (``hurtle.workflows``) records
each member's result with it, so a member that runs twice is counted once and
exactly one of the members that finish together completes the set.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Sequence


class RecordStore(abc.ABC):
    """Keys of opaque bytes, each with a time to live."""

    @abc.abstractmethod
    async def put(self, key: str, value: bytes, ttl: float) -> None:
        """Set ``key`` to ``value`` (replacing any value it had) for ``ttl`` seconds."""

    @abc.abstractmethod
    async def get_all(self, prefix: str) -> dict[str, bytes]:
        """Every live record whose key starts with ``prefix`` (taken literally), by key.
        An expired record is never returned."""

    @abc.abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The live value of ``key``; None when it has none (never put, deleted or expired)."""

    @abc.abstractmethod
    async def put_if(self, key: str, value: bytes, ttl: float, *, current: bytes | None) -> bool:
        """Set ``key`` to ``value`` for ``ttl`` seconds only if its live value is
        ``current`` (None: it has no live value); True when it was set. Atomic
        across processes: of the callers that give the same ``current``, one wins."""

    async def gather(self, key: str, index: int, value: bytes, ttl: float) -> tuple[bool, int]:
        """Keep ``value`` as member ``index`` of the set ``key`` unless that member is
        there already (its first value stays), and keep the set ``ttl`` seconds from
        now; return whether this call added the member, and how many members the set
        holds now. Atomic across processes: of callers adding different members,
        exactly one sees the count its addition completed. Every broker's store
        has it; this default is for stores that keep no sets."""
        raise NotImplementedError(f"{type(self).__name__} keeps no sets")

    async def gather_many(self, items: Sequence[tuple[str, int, bytes, float]]) -> list[tuple[bool, int]]:
        """``gather`` for each (key, index, value, ttl), in order, each answer as if
        alone: the count after that item's addition. Stores override it with one
        round trip; this default makes one call per item."""
        return [await self.gather(key, index, value, ttl) for key, index, value, ttl in items]

    async def gathered(self, key: str) -> dict[int, bytes]:
        """The members of the set ``key``, by index (empty when it has none)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no sets")

    @abc.abstractmethod
    async def delete(self, keys: Sequence[str]) -> None:
        """Remove ``keys`` (records and sets); keys that do not exist are no error."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close connections. Idempotent."""


class MemoryRecords(RecordStore):
    """Records in this process's memory: for tests, and the memory broker (whose
    broker objects of one name, on any thread, share one)."""

    def __init__(self) -> None:
        self._records: dict[str, tuple[float, bytes]] = {}
        self._sets: dict[str, tuple[float, dict[int, bytes]]] = {}
        self._lock = threading.Lock()

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        with self._lock:
            self._records[key] = (time.time() + ttl, bytes(value))

    async def get_all(self, prefix: str) -> dict[str, bytes]:
        now = time.time()
        with self._lock:
            for key in [k for k, (expires_at, _) in self._records.items() if expires_at <= now]:
                del self._records[key]
            return {k: value for k, (_, value) in self._records.items() if k.startswith(prefix)}

    async def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._live(key, time.time())

    async def put_if(self, key: str, value: bytes, ttl: float, *, current: bytes | None) -> bool:
        now = time.time()
        with self._lock:
            if self._live(key, now) != current:
                return False
            self._records[key] = (now + ttl, bytes(value))
            return True

    def _live(self, key: str, now: float) -> bytes | None:
        found = self._records.get(key)
        return found[1] if found is not None and found[0] > now else None

    async def gather(self, key: str, index: int, value: bytes, ttl: float) -> tuple[bool, int]:
        now = time.time()
        with self._lock:
            found = self._sets.get(key)
            members = found[1] if found is not None and found[0] > now else {}
            added = index not in members
            if added:
                members[index] = bytes(value)
            self._sets[key] = (now + ttl, members)
            return added, len(members)

    async def gathered(self, key: str) -> dict[int, bytes]:
        with self._lock:
            found = self._sets.get(key)
            return dict(found[1]) if found is not None and found[0] > time.time() else {}

    async def delete(self, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self._records.pop(key, None)
                self._sets.pop(key, None)

    async def close(self) -> None:
        pass
