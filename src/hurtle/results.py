"""The result store contract: results keyed by task id, kept for a time to live.

A rerun of the same task (at least once delivery) overwrites the same key.

Waiting: every ``wait`` of one store on one event loop joins one ``Waiters``
hub, which looks the awaited ids up together: a thousand ``result_async``
calls gathered at once cost one lookup per round (or one connection, for a
store that notifies), never one per waiter. On Redis a blocking call per
waiter took a pooled connection each and ran the pool dry.

The hub has no task of its own: one of the waiting coroutines is on duty and
does the rounds for everyone while the others sleep; when it leaves (its result
came, its time ran out, it was cancelled) the duty passes to another. So when no
one waits, nothing runs and nothing is left pending, even on a loop that is
never closed (the sync API's portal thread).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from hurtle.errors import BrokerError

POLL_MIN = 0.001  # seconds between lookups right after a new waiter or a found result
POLL_MAX = 0.05  # seconds between lookups when nothing changes


class ResultStore(abc.ABC):
    """Stores encoded ``Result`` records (bytes) by task id."""

    _waiters: Waiters | None = None  # the hub of the loop that waited last, made on first wait

    @abc.abstractmethod
    async def store(self, results: Sequence[tuple[str, bytes]], ttl: float) -> None:
        """Write every (task id, record) pair, each kept ``ttl`` seconds."""

    @abc.abstractmethod
    async def get(self, task_id: str) -> bytes | None:
        """The record, or None when there is none (yet, or any more)."""

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, bytes]:
        """The records found among ``task_ids``; stores override it with one query."""
        found = {}
        for task_id in task_ids:
            record = await self.get(task_id)
            if record is not None:
                found[task_id] = record
        return found

    async def wait(self, task_id: str, timeout: float | None) -> bytes | None:
        """Wait up to ``timeout`` seconds (None: forever) for the record; None if
        none came. Cancelling the call, or its timeout, leaves nothing behind."""
        if timeout is not None and timeout <= 0:
            return await self.get(task_id)  # no time to wait: look once
        waiters = self._waiters
        if waiters is None or waiters.loop is not asyncio.get_running_loop():
            # A store belongs to one loop; a hub left by an earlier (closed) loop is dropped.
            waiters = self._waiters = self.make_waiters()
        return await waiters.wait(task_id, timeout)

    def make_waiters(self) -> Waiters:
        """The hub that serves this store's waiters: by default one polling loop
        (``get_many``); a store that can notify returns its own."""
        return PollingWaiters(self)

    async def close_waiters(self) -> None:
        """Stop the hub; whoever still waits gets a ``BrokerError``. For ``close``."""
        waiters, self._waiters = self._waiters, None
        if waiters is not None:
            await waiters.close()

    @abc.abstractmethod
    async def forget(self, task_ids: Sequence[str]) -> None:
        """Delete results now."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close connections. Idempotent."""


@dataclass(eq=False)
class Waiter:
    """One ``wait`` call: what it waits for, and how to wake it."""

    task_id: str
    wake: asyncio.Future[None]
    record: bytes | None = None
    error: BaseException | None = None

    def rouse(self) -> None:
        if not self.wake.done():
            self.wake.set_result(None)


class Waiters(abc.ABC):
    """Everyone waiting for results of one store on one event loop.

    ``waiting`` holds the waiters by task id. The waiter on duty calls ``serve``
    for one round at a time, sleeping between rounds as long as it says, or
    until ``nudge``; the others sleep until ``resolve`` (or the duty) wakes them.
    """

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.waiting: dict[str, list[Waiter]] = {}
        #: Set by ``serve`` while the store cannot be reached: a waiter whose time
        #: runs out meanwhile raises it rather than a plain timeout.
        self.trouble: BrokerError | None = None
        self._duty: Waiter | None = None
        self._closed = False

    async def wait(self, task_id: str, timeout: float | None) -> bytes | None:
        if self._closed:
            raise BrokerError("the result store is closed")
        deadline = None if timeout is None else self.loop.time() + timeout
        me = Waiter(task_id, self.loop.create_future())
        same = self.waiting.get(task_id)
        if same is None:
            self.waiting[task_id] = [me]
            self.added(task_id)
        else:
            same.append(me)
        try:
            while me.record is None and me.error is None:
                if me.wake.done():  # before the round: a nudge during it must not be lost
                    me.wake = self.loop.create_future()
                pause = None if deadline is None else deadline - self.loop.time()
                if pause is not None and pause <= 0:
                    if self.trouble is not None:
                        raise self.trouble
                    return None
                if self._duty is None:
                    self._duty = me
                if self._duty is me:
                    next_round = await self.serve(pause)
                    if me.record is not None or me.error is not None:
                        break
                    if next_round is not None:
                        pause = next_round if pause is None else min(pause, next_round)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(me.wake, pause)
            if me.error is not None:
                raise me.error
            return me.record
        finally:
            self._leave(me)

    def _leave(self, me: Waiter) -> None:
        same = self.waiting.get(me.task_id)
        if same is not None and me in same:
            same.remove(me)
            if not same:
                del self.waiting[me.task_id]
                self.removed(me.task_id)
        if self._duty is me:
            self._duty = None
            for others in self.waiting.values():
                self._duty = others[0]  # anyone: it wakes and does the next round
                self._duty.rouse()
                break

    def nudge(self) -> None:
        """Have the waiter on duty do a round now."""
        if self._duty is not None:
            self._duty.rouse()

    def resolve(self, task_id: str, record: bytes) -> None:
        """Hand ``record`` to everyone waiting for ``task_id`` (if anyone still is)."""
        same = self.waiting.pop(task_id, None)
        if same is None:
            return
        for waiter in same:
            waiter.record = record
            waiter.rouse()
        self.removed(task_id)

    def fail_all(self, exc: BaseException) -> None:
        """Every waiter raises ``exc``."""
        for task_id in list(self.waiting):
            for waiter in self.waiting.pop(task_id):
                waiter.error = exc
                waiter.rouse()
            self.removed(task_id)

    async def close(self) -> None:
        self._closed = True
        self.fail_all(BrokerError("the result store was closed while waiting for a result"))
        await self.closed()

    # -- what a kind of hub does ---------------------------------------------------

    @abc.abstractmethod
    async def serve(self, patience: float | None) -> float | None:
        """One round (called by the waiter on duty, only while someone waits):
        resolve what can be; return the seconds until the next round is due
        (None: only when nudged). ``patience``: the seconds the waiter on duty has
        left (None: no limit), for a round that would retry."""

    def added(self, task_id: str) -> None:  # noqa: B027 - optional hook
        """A first waiter for ``task_id`` arrived."""

    def removed(self, task_id: str) -> None:  # noqa: B027 - optional hook
        """The last waiter for ``task_id`` left (resolved, timed out or cancelled)."""

    async def closed(self) -> None:  # noqa: B027 - optional hook
        """The store closed: release what the hub holds."""


class PollingWaiters(Waiters):
    """For stores that cannot notify: each round asks ``get_many`` for every
    awaited id at once, at once for a new waiter, then after 1 ms doubling to
    50 ms (a found result starts again at 1 ms: more are likely on their way)."""

    def __init__(self, store: ResultStore) -> None:
        super().__init__()
        self.store = store
        self._interval = POLL_MIN
        self._due = 0.0  # loop time of the next lookup

    def added(self, task_id: str) -> None:
        self._soon()

    def poke(self) -> None:
        """Look now (from any thread): a result was just stored."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            self.loop.call_soon_threadsafe(self._soon)

    def _soon(self) -> None:
        self._interval, self._due = POLL_MIN, 0.0
        self.nudge()

    async def serve(self, patience: float | None) -> float | None:
        now = self.loop.time()
        if now < self._due:
            return self._due - now
        try:
            found = await self.store.get_many(list(self.waiting))
        except Exception as exc:  # each waiter's own lookup would have raised it
            self.fail_all(exc)
            return None
        for task_id, record in found.items():
            self.resolve(task_id, record)
        if found:
            self._interval = POLL_MIN
        pause, self._interval = self._interval, min(self._interval * 2, POLL_MAX)
        self._due = self.loop.time() + pause
        return pause
