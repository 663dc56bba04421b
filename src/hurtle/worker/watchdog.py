"""Is each worker process's event loop still turning?

An async task that calls ``time.sleep(60)`` or a C call that holds the GIL
freezes the whole process: no other task runs, and no lease heartbeat goes
out, so the broker hands the message to another worker while it still runs.
Each process stamps a slot of shared memory once a second from its loop and
says in its log when the loop was late, naming the async tasks that were
running; the supervisor kills a process whose stamp is older than the stall
limit, and its messages come back counted (so a task that always does this is
dead-lettered after ``max_deliveries``).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from collections.abc import Callable, Iterable

log = logging.getLogger("hurtle.worker")

BEAT_EVERY = 1.0  # seconds between stamps
LATE = 0.5  # seconds of lag worth a warning in the worker's log


class Heartbeats:
    """One monotonic timestamp per process slot, in memory shared across fork."""

    def __init__(self, slots: int) -> None:
        # CLOCK_MONOTONIC is system-wide on Linux: comparable across processes.
        self._stamps = multiprocessing.RawArray("d", slots)

    def stamp(self, slot: int) -> None:
        self._stamps[slot] = time.monotonic()

    def age(self, slot: int) -> float:
        return time.monotonic() - float(self._stamps[slot])

    async def keep_stamping(self, slot: int, running: Callable[[], Iterable[str]]) -> None:
        """From the worker's loop: stamp, and report when the loop was blocked."""
        while True:
            self.stamp(slot)
            before = time.monotonic()
            await asyncio.sleep(BEAT_EVERY)
            lag = time.monotonic() - before - BEAT_EVERY
            if lag > LATE:
                names = ", ".join(sorted(set(running()))) or "none"
                log.warning(
                    "the event loop was blocked for %.1fs; async tasks running: %s"
                    " (a blocking call in an async task stops every other task)",
                    lag, names,
                )
