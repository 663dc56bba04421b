"""Chord members counted together: one ``gather_many`` for the members a process
finished meanwhile, not one round trip each.

A member's settling asks ``add`` and waits; the first request of a batch
starts a flush on the loop's next turn, and requests that come while a flush
is out wait for the next one: under load each round trip carries everything
finished since the last. Each caller gets its own item's answer, as if alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hurtle.records import RecordStore

Item = tuple[str, int, bytes, float]


class GatherBatch:
    """One worker process's pending ``gather`` calls, sent in batches."""

    def __init__(self, store: Callable[[], RecordStore]) -> None:
        self._store = store
        self._pending: list[tuple[Item, asyncio.Future[tuple[bool, int]]]] = []
        self._flushing = False
        self._flusher: asyncio.Task[None] | None = None  # kept: the loop holds tasks weakly

    async def add(self, key: str, index: int, value: bytes, ttl: float) -> tuple[bool, int]:
        """``RecordStore.gather``, batched with the others of this moment."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[bool, int]] = loop.create_future()
        self._pending.append(((key, index, value, ttl), future))
        if not self._flushing:
            self._flushing = True
            loop.call_soon(self._start_flush)
        return await future

    def _start_flush(self) -> None:
        self._flusher = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    answers = await self._store().gather_many([item for item, _ in batch])
                except Exception as exc:  # each caller's own gather would have raised it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), answer in zip(batch, answers, strict=True):
                    if not future.done():
                        future.set_result(answer)
        finally:
            self._flushing = False
