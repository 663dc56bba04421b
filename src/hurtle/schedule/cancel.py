"""Cancelling tasks: ``Handle.cancel()`` and ``hurtle cancel TASK_ID``.

A cancel is a mark in the app's record store, read by every worker:

- ``cancel:index``: every live mark, as JSON ``{task id: expires_at}``, changed
  with ``put_if`` (a compare-and-set: two cancels at once both land), pruned of
  expired marks at each change. A mark lives as long as a result (the app's
  ``result_ttl``): a task cancelled while queued is still known as cancelled
  when a worker takes it, if that is within the result's lifetime.
- ``cancel:generation``: a random token, written after each change of the index.

A worker process reads the generation once a second (``POLL_EVERY``), one small
``GET``; only when it changed does it read the index. The ids it holds are a
set in memory: a message taken from the queue is checked against it with one
set lookup (an empty set: one truth test), so the hot path pays nothing while
nothing is cancelled. A queued task found there is acknowledged with a
``cancelled`` result and never runs; a running async task is cancelled on the
loop; a running sync task's ``current_task().cancelled`` turns true.

Latency: a worker learns of a cancel within ``POLL_EVERY`` (about 1 s) plus
the store's round trip. A message taken in that window starts, and is then
cancelled as a running task.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable

import msgspec

from hurtle.errors import BrokerError
from hurtle.records import RecordStore

INDEX_KEY = "cancel:index"
GENERATION_KEY = "cancel:generation"
POLL_EVERY = 1.0  # seconds between a worker's looks at the generation
_TRIES = 50  # compare-and-set rounds before a cancel gives up (others kept changing the index)

log = logging.getLogger("hurtle.worker")

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(dict[str, float])


def live_marks(value: bytes | None, now: float) -> dict[str, float]:
    """The marks of an index value that have not expired (a value that does not
    decode, written by something else, counts as none)."""
    if not value:
        return {}
    try:
        marks = _decoder.decode(value)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return {}
    return {task_id: until for task_id, until in marks.items() if until > now}


async def request_cancel(store: RecordStore, task_ids: Iterable[str], ttl: float) -> None:
    """Mark ``task_ids`` cancelled for ``ttl`` seconds, then bump the generation."""
    wanted = list(task_ids)
    for _ in range(_TRIES):
        current = await store.get(INDEX_KEY)
        now = time.time()
        marks = live_marks(current, now)
        marks.update(dict.fromkeys(wanted, now + ttl))
        keep = max(marks.values()) - now
        if await store.put_if(INDEX_KEY, _encoder.encode(marks), keep, current=current):
            break
    else:
        raise BrokerError(f"could not record the cancel: the index kept changing ({_TRIES} tries)")
    # After the index: a worker that sees the new generation reads an index that holds the mark.
    await store.put(GENERATION_KEY, os.urandom(8).hex().encode(), keep)


async def cancel_requested(store: RecordStore, task_id: str) -> bool:
    """Whether a live mark asks for ``task_id`` to be cancelled."""
    return task_id in live_marks(await store.get(INDEX_KEY), time.time())


class CancelWatch:
    """One worker process's view of the marks, refreshed by ``look``."""

    def __init__(self, store: Callable[[], RecordStore | None]) -> None:
        self._store = store
        self._generation: bytes | None = None
        #: Task ids with a live mark, as of the last look. The consumer reads it per message.
        self.ids: set[str] = set()
        self._failing = False

    async def look(self) -> set[str]:
        """Read the generation, and the index when it changed; the ids newly marked."""
        store = self._store()
        if store is None:
            return set()
        try:
            generation = await store.get(GENERATION_KEY)
            if generation == self._generation:
                return set()
            marks = live_marks(await store.get(INDEX_KEY), time.time())
        except Exception as exc:
            if not self._failing:
                log.warning("could not read cancel marks (%s: %s); will try again", type(exc).__name__, exc)
            self._failing = True
            return set()
        self._failing = False
        self._generation = generation
        new = set(marks) - self.ids
        self.ids = set(marks)
        return new
