"""Finished tasks' results and acks, written in batches; and the backpressure
that stops a worker fetching while they cannot be written.

Every task that finishes while a batch is being written goes out in the next
one, so a busy worker makes a round trip per batch, not per task. A batch that
cannot be written (the result store or the broker is down) is kept and tried
again every second: nothing finished is lost, and its messages stay in flight,
their leases extended by the heartbeat, so none is delivered again meanwhile.
What is kept is bounded: past ``held_limit`` messages held (running or finished
and unwritten) the consumer fetches nothing until a write brings it back down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection

from hurtle.brokers import Broker, Delivery
from hurtle.results import ResultStore

log = logging.getLogger("hurtle.worker")

RETRY_EVERY = 1.0  # seconds between tries of a batch that could not be written
UNSETTLED_PER_SLOT = 4
UNSETTLED_FLOOR = 256


def held_limit(slots: int, max_unsettled: int | None) -> int:
    """How many messages a process may hold: its ``slots`` running, plus at most
    ``max_unsettled`` finished and waiting to be written (default: 4 per slot, at
    least 256; far above what a healthy worker keeps waiting, a few per slot)."""
    if max_unsettled is None:
        max_unsettled = max(UNSETTLED_FLOOR, UNSETTLED_PER_SLOT * slots)
    return slots + max(1, max_unsettled)


class SettleBuffer:
    """The acks and results waiting for the next write, and the writer."""

    def __init__(
        self, broker: Broker, store: ResultStore | None, ttl: float, in_flight: dict[int, Delivery]
    ) -> None:
        self.broker = broker
        self.store = store
        self.ttl = ttl
        self.in_flight = in_flight  # the consumer's: a written ack ends its message's lease
        self.acks: list[Delivery] = []
        self.results: list[tuple[str, bytes]] = []
        self.wanted = asyncio.Event()
        self.written = asyncio.Event()  # a write succeeded, or the worker is stopping
        self.writing = 0  # finished tasks in the batch being written now
        self.failure: Exception | None = None  # why the last write failed; None once one succeeds
        self._failing_since = 0.0
        self._lock = asyncio.Lock()

    @property
    def unsettled(self) -> int:
        """Finished tasks whose acks are not written yet."""
        return len(self.acks) + self.writing

    async def run(self) -> None:
        """Write whatever is waiting, as soon as the previous write is done."""
        while True:
            await self.wanted.wait()
            self.wanted.clear()
            # Let a fetch that the same finished tasks made room for go out first:
            # the broker answers it before it writes the acks, so the next tasks
            # start while the acks are written.
            await asyncio.sleep(0)
            try:
                await self.flush()
            except Exception as exc:
                self._failed(exc)
                self.wanted.set()
                await asyncio.sleep(RETRY_EVERY)

    async def flush(self) -> None:
        """Results first, then acks: a crash between reruns the task, whose new
        result overwrites the old one (at least once, never a lost result)."""
        async with self._lock:  # the drain must not release what is being acked
            # Copied, not swapped: the consumer appends to these very lists.
            acks, results = self.acks.copy(), self.results.copy()
            self.acks.clear()
            self.results.clear()
            self.writing = len(acks)
            try:
                if results and self.store is not None:
                    await self.store.store(results, self.ttl)
                    results = []
                await self.broker.ack(acks)
            except BaseException:
                self.acks[:0], self.results[:0] = acks, results
                raise
            finally:
                self.writing = 0
            for delivery in acks:
                self.in_flight.pop(id(delivery), None)
        if self.failure is not None:
            log.warning("acks and results written again after %.1fs", time.monotonic() - self._failing_since)
            self.failure = None
        self.written.set()

    def _failed(self, exc: Exception) -> None:
        """Say so once, not at every try."""
        if self.failure is None:
            self._failing_since = time.monotonic()
            log.warning(
                "writing acks and results failed; %d finished task(s) kept, trying again every %gs",
                self.unsettled, RETRY_EVERY, exc_info=exc,
            )
        self.failure = exc

    async def hold_back(
        self, resume_at: int, stopping: Callable[[], bool], meanwhile: Callable[[], Awaitable[None]]
    ) -> None:
        """Wait until writes leave at most ``resume_at`` messages held (the low
        water mark), or ``stopping()``. ``meanwhile`` runs after each second
        without a write: the consumer asks after its broker there."""
        since, said = time.monotonic(), False
        while not stopping() and len(self.in_flight) > resume_at:
            if self.failure is not None and not said:
                said = True
                unsettled = self.unsettled
                log.warning(
                    "results cannot be written: stopped fetching with %d finished tasks unsettled"
                    " and %d running (%s)", unsettled, len(self.in_flight) - unsettled, self.failure,
                )
            self.written.clear()
            try:
                await asyncio.wait_for(self.written.wait(), RETRY_EVERY)
            except asyncio.TimeoutError:
                await meanwhile()
        if said and not stopping():
            log.warning("results written again: fetching resumed after %.1fs", time.monotonic() - since)


def slots_of(kinds: Collection[bool], concurrency: int, threads: int) -> int:
    """The slots a process fetches for: async ones (True), thread ones (False)."""
    return (concurrency if True in kinds else 0) + (threads if False in kinds else 0)
