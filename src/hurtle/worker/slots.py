"""Capacity with high and low water marks.

Fetching one message each time one task finishes makes a round trip per task;
waiting until a batch of slots is free (the low water mark) and then fetching
them all at once keeps round trips per batch, while never fetching more than
can start now (a prefetch lets one busy worker hoard what idle ones could run).
"""

from __future__ import annotations

import asyncio


class Slots:
    """``capacity`` tasks may run at once; refill once ``refill`` slots are free."""

    def __init__(self, capacity: int, refill: int | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, not {capacity}")
        self.capacity = capacity
        self.refill = max(1, min(capacity, refill if refill is not None else capacity // 10))
        self.busy = 0
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def free(self) -> int:
        return self.capacity - self.busy

    def occupied(self) -> float:
        """The share of the capacity taken now (``-t auto`` averages it)."""
        return self.busy / self.capacity

    def take(self, count: int = 1) -> None:
        self.busy += count
        self._idle.clear()
        if self.free < self.refill:
            self._room.clear()

    def give(self, count: int = 1) -> None:
        self.busy -= count
        if self.free >= self.refill:
            self._room.set()
        if self.busy == 0:
            self._idle.set()

    def resize(self, capacity: int) -> None:
        """Change how many may run at once (``-t auto``). Shrinking below ``busy``
        starts nothing more until enough have finished."""
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, not {capacity}")
        self.capacity = capacity
        self.refill = min(self.refill, capacity)
        if self.free >= self.refill:
            self._room.set()
        else:
            self._room.clear()

    async def wait_for_room(self) -> int:
        """Wait until at least ``refill`` slots are free; return how many are."""
        await self._room.wait()
        return self.free

    async def wait_idle(self) -> None:
        await self._idle.wait()

    def wake(self) -> None:
        """Release a waiter so it can notice the worker is stopping."""
        self._room.set()
