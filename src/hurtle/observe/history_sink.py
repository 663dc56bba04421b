"""The task history's writer: a ``FigureSink`` adding each process's figures to the store.

Every few seconds (``figure_writer``) a worker process adds what its tasks came
to into one tally per minute (``history_layout``), so the figures of every
process on every machine merge in the store by adding and nobody gathers them.
A write that fails keeps its figures for the next turn and is logged at most
once a minute: the history may lag while the store is away, tasks never wait
for it. Figures older than the history's lifetime are dropped rather than kept
for a store that would let them expire at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from hurtle.observe.history_layout import encode, in_field, minute_key
from hurtle.observe.task_figures import FigureKey, MinuteFigures, merge
from hurtle.observe.trouble import Trouble
from hurtle.tallies import TallyStore

log = logging.getLogger("hurtle.history")

CLOSE_LIMIT = 5.0  # seconds a clean stop spends on its last write, at most

#: Reads how many messages each queue ever took in (``Broker.added_counts``).
Sampler = Callable[[], Awaitable[dict[str, int]]]


class HistorySink:
    """Adds task figures to ``store``'s minute keys, each kept ``ttl`` seconds after
    the minute ends. ``sample``, when given, is read at each write and stored as
    the minute's counts taken in. ``own_store``: close ``store`` at ``close`` (a
    borrowed store is closed by its lender)."""

    def __init__(
        self, store: TallyStore, ttl: float, *, sample: Sampler | None = None, own_store: bool = False
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.sample = sample
        self.own_store = own_store
        self._backlog: dict[FigureKey, MinuteFigures] = {}
        self._trouble = Trouble(log)

    def __repr__(self) -> str:
        return f"<HistorySink ttl={self.ttl:g}s>"

    async def send(self, figures: dict[FigureKey, MinuteFigures]) -> None:
        merge(self._backlog, figures)
        await self._write()

    async def close(self) -> None:
        try:
            if self._backlog:
                await asyncio.wait_for(self._write(), CLOSE_LIMIT)
        except TimeoutError:
            log.warning("task history: the last figures could not be written within %gs", CLOSE_LIMIT)
        finally:
            if self.own_store:
                await self.store.close()

    async def _write(self) -> None:
        now = time.time()
        oldest = int((now - self.ttl) // 60)
        backlog, self._backlog = self._backlog, {}
        by_minute = encode({key: value for key, value in backlog.items() if key[2] >= oldest})
        added = await self._sampled()
        minute = int(now // 60)
        if added:
            by_minute.setdefault(minute, {})
        for at in sorted(by_minute):
            highest = added if at == minute else None
            try:
                await self.store.add(minute_key(at), by_minute[at], self.ttl + 60.0, highest=highest)
            except Exception as exc:
                # What is not written yet waits for the next turn; what was is never sent twice.
                merge(self._backlog, {key: value for key, value in backlog.items() if key[2] >= at})
                self._failed(exc)
                return
        self._trouble.ok("task history: figures are written again")

    async def _sampled(self) -> dict[str, int] | None:
        if self.sample is None:
            return None
        try:
            counts = await self.sample()
        except Exception as exc:  # the rate in shows as unknown for this minute; figures go on
            self._failed(exc)
            return None
        return {in_field(queue): count for queue, count in counts.items()}

    def _failed(self, exc: Exception) -> None:
        self._trouble.failed("write the task history", exc, "; figures kept for the next try, tasks run on")
