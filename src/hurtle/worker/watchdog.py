"""Is each worker process's event loop still turning?

An async task that calls ``time.sleep(60)`` or a C call that holds the GIL
freezes the whole process: no other task runs, and no lease heartbeat goes
out, so the broker hands the message to another worker while it still runs.
Each process stamps a slot of shared memory from its loop several times a
second. In the process, a watcher thread reads the stamp to find the task that
blocks the loop while it blocks, and interrupts it (``loop_watch.py``); the
supervisor kills a process whose stamp is older than the stall limit, for the
blocks nothing could interrupt, and its messages come back counted (so a task
that always does this is dead-lettered after ``max_deliveries``).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time

BEAT_EVERY = 0.25  # seconds between stamps: how soon a block can be noticed


class Heartbeats:
    """One monotonic timestamp per process slot, in memory shared across fork."""

    def __init__(self, slots: int) -> None:
        # CLOCK_MONOTONIC is system-wide on Linux: comparable across processes.
        self._stamps = multiprocessing.RawArray("d", slots)

    def stamp(self, slot: int) -> None:
        self._stamps[slot] = time.monotonic()

    def age(self, slot: int) -> float:
        return time.monotonic() - float(self._stamps[slot])

    async def keep_stamping(self, slot: int) -> None:
        """From the worker's loop: a stamp that ages only while the loop is blocked."""
        while True:
            self.stamp(slot)
            await asyncio.sleep(BEAT_EVERY)
