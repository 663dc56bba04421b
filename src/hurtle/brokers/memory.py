"""In-process broker for tests: ``memory://`` or ``memory://NAME``.

Every broker object with the same URL in one process shares one store, so a
producer on one event loop (the sync client's thread) and a worker on another
see the same queues. Not shared across processes.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from hurtle.brokers.base import (
    BeforeMove,
    Broker,
    DeadLetter,
    Delivery,
    Location,
    Message,
    QueueStats,
    Requeued,
    allot,
    each_once,
)
from hurtle.brokers.url_options import query_options, refuse_unknown
from hurtle.limit_store import LimitStore, MemoryLimits
from hurtle.records import MemoryRecords, RecordStore
from hurtle.results import PollingWaiters, ResultStore, Waiters
from hurtle.tallies import MemoryTallies, TallyStore
from hurtle.urls import SecretURL

_POLL_CAP = 0.05  # seconds: delayed messages and expired leases are found by then


@dataclass(slots=True)
class _Entry:
    id: str
    queue: str
    body: bytes
    visible_at: float
    deliveries: int = 0
    leased: bool = False


class _Store:
    """The shared state behind every memory broker of one name."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sequence = itertools.count()
        self.entries: dict[int, _Entry] = {}
        self.queues: set[str] = set()
        self.dead: dict[str, DeadLetter] = {}
        self.results: dict[str, tuple[bytes, float]] = {}
        self.tallies = MemoryTallies()
        self.records = MemoryRecords()
        self.limits = MemoryLimits()
        self.waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()
        # Result hubs of every loop, poked when a result is stored (weak: a hub goes with its broker).
        self.result_waiters: weakref.WeakSet[PollingWaiters] = weakref.WeakSet()

    def add(self, message: Message, now: float) -> None:
        self.queues.add(message.queue)
        visible_at = message.eta if message.eta is not None else now
        self.entries[next(self.sequence)] = _Entry(
            message.id, message.queue, message.body, visible_at
        )

    def wake_all(self) -> None:
        for loop, future in list(self.waiters):
            loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_stores: dict[str, _Store] = {}
_stores_lock = threading.Lock()


def _store_for(url: str) -> _Store:
    with _stores_lock:
        return _stores.setdefault(url, _Store())


class MemoryBroker(Broker):
    schemes = ("memory",)
    locates_messages = True
    shared_across_processes = False

    def __init__(self, url: str | SecretURL = "memory://", *, visibility_timeout: float = 30.0) -> None:
        super().__init__(url, visibility_timeout=visibility_timeout)
        options = query_options(urlsplit(self.url.reveal()))
        refuse_unknown("memory", (k for k, _ in options), {"hurtle": self.url_options})
        self._store = _store_for(self.url.reveal())
        self._results = MemoryResults(self._store)

    async def enqueue(self, messages: Sequence[Message]) -> None:
        now = time.time()
        batch = list(messages)  # all or nothing: read the whole batch before storing any
        store = self._store
        with store.lock:
            for message in batch:
                store.add(message, now)
        store.wake_all()

    async def fetch(
        self, queues: Sequence[str], max_count: int, timeout: float, *, quotas: Sequence[int] | None = None
    ) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while True:
            taken = self._take(queues, max_count) if quotas is None else self._take_in_order(
                queues, quotas, max_count
            )
            remaining = deadline - time.monotonic()
            if taken or remaining <= 0 or max_count <= 0:
                return taken
            await self._wait(min(remaining, _POLL_CAP))

    def _take(self, queues: Sequence[str], max_count: int) -> list[Delivery]:
        wanted = set(queues)
        now = time.time()
        taken: list[Delivery] = []
        store = self._store
        with store.lock:
            for key, entry in store.entries.items():
                if len(taken) >= max_count:
                    break
                if entry.queue in wanted and entry.visible_at <= now:
                    entry.deliveries += 1
                    entry.leased = True
                    entry.visible_at = now + self.visibility_timeout
                    taken.append(
                        Delivery(entry.queue, entry.body, entry.deliveries, (key, entry.deliveries))
                    )
        return taken

    def _take_in_order(self, queues: Sequence[str], quotas: Sequence[int], max_count: int) -> list[Delivery]:
        """``_take`` by the quotas rule (``allot``): each queue's oldest, queue by queue."""
        first = each_once(queues, quotas)
        queues, quotas = list(first), list(first.values())
        now = time.time()
        store = self._store
        with store.lock:
            ready: dict[str, list[tuple[int, _Entry]]] = {q: [] for q in queues}
            for key, entry in store.entries.items():
                waiting = ready.get(entry.queue)
                if waiting is not None and entry.visible_at <= now:
                    waiting.append((key, entry))
            takes = allot([len(ready[q]) for q in queues], quotas, max_count)
            taken: list[Delivery] = []
            for queue, count in zip(queues, takes, strict=True):
                for key, entry in ready[queue][:count]:
                    entry.deliveries += 1
                    entry.leased = True
                    entry.visible_at = now + self.visibility_timeout
                    taken.append(Delivery(entry.queue, entry.body, entry.deliveries, (key, entry.deliveries)))
        return taken

    async def _wait(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        waiter = (loop, future)
        self._store.waiters.add(waiter)
        try:
            await asyncio.wait_for(future, seconds)
        except asyncio.TimeoutError:
            pass
        finally:
            self._store.waiters.discard(waiter)

    def _owned(self, delivery: Delivery) -> tuple[int, _Entry] | None:
        """The entry still leased by this delivery, else None (lease expired)."""
        key, token = delivery.receipt
        entry = self._store.entries.get(key)
        if entry is None or entry.deliveries != token:
            return None
        return key, entry

    async def ack(self, deliveries: Sequence[Delivery]) -> None:
        with self._store.lock:
            for delivery in deliveries:
                owned = self._owned(delivery)
                if owned is not None:
                    del self._store.entries[owned[0]]

    async def retry(self, delivery: Delivery, message: Message) -> None:
        now = time.time()
        with self._store.lock:
            owned = self._owned(delivery)
            if owned is None:
                return  # the lease expired and another worker owns the message now
            del self._store.entries[owned[0]]
            self._store.add(message, now)
        self._store.wake_all()

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        with self._store.lock:
            owned = self._owned(delivery)
            if owned is None:
                return
            key, entry = owned
            del self._store.entries[key]
            self._store.dead[str(key)] = DeadLetter(
                str(key), entry.queue, entry.body, reason, time.time(), entry.id
            )

    async def extend(self, deliveries: Sequence[Delivery]) -> None:
        until = time.time() + self.visibility_timeout
        with self._store.lock:
            for delivery in deliveries:
                owned = self._owned(delivery)
                if owned is not None:
                    owned[1].visible_at = until

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        now = time.time()
        with self._store.lock:
            for delivery in deliveries:
                owned = self._owned(delivery)
                if owned is not None:
                    entry = owned[1]
                    entry.leased = False
                    entry.deliveries -= 1
                    entry.visible_at = now
        self._store.wake_all()

    async def stats(self, queues: Sequence[str] | None = None) -> list[QueueStats]:
        """Exact: an entry's ``visible_at`` is when it was sent, its eta, when it was
        given back, or when its lease ran out; the oldest ready one's is the age."""
        now = time.time()
        with self._store.lock:
            names = sorted(self._store.queues if queues is None else set(queues))
            counts = {name: [0, 0, 0, 0] for name in names}
            ready_since = dict.fromkeys(names, now)
            for entry in self._store.entries.values():
                row = counts.get(entry.queue)
                if row is None:
                    continue
                if entry.visible_at <= now:
                    row[0] += 1
                    ready_since[entry.queue] = min(ready_since[entry.queue], entry.visible_at)
                elif entry.leased:
                    row[2] += 1
                else:
                    row[1] += 1
            for dead in self._store.dead.values():
                if dead.queue in counts:
                    counts[dead.queue][3] += 1
        return [QueueStats(name, ready, delayed, leased, dead, now - ready_since[name])
                for name, (ready, delayed, leased, dead) in counts.items()]

    async def locate(
        self, task_ids: Sequence[str], queues: Sequence[str] | None = None
    ) -> dict[str, Location]:
        """A look at every stored message, under the store's lock."""
        wanted = set(task_ids)
        names = None if queues is None else set(queues)
        now = time.time()
        found: dict[str, Location] = {}
        with self._store.lock:
            for entry in self._store.entries.values():
                if entry.id in wanted and (names is None or entry.queue in names):
                    if entry.leased and entry.visible_at > now:
                        found[entry.id] = "running"
                    else:
                        found.setdefault(entry.id, "queued")
        return found

    async def purge(self, queue: str) -> int:
        now = time.time()
        with self._store.lock:
            keys = [
                k
                for k, e in self._store.entries.items()
                if e.queue == queue and not (e.leased and e.visible_at > now)
            ]
            for key in keys:
                del self._store.entries[key]
        return len(keys)

    async def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        with self._store.lock:
            letters = [d for d in self._store.dead.values() if queue in (None, d.queue)]
        return list(reversed(letters))[:limit]

    async def requeue_dead(
        self, ids: Sequence[str] | None = None, before_move: BeforeMove | None = None
    ) -> int:
        if ids is not None:
            return (await self.requeue_dead_by_id(ids, before_move)).count
        with self._store.lock:
            chosen = {k: d.message_id for k, d in self._store.dead.items()}
        return len(await self._requeue(chosen, before_move))

    async def requeue_dead_by_id(self, ids: Sequence[str], before_move: BeforeMove | None = None) -> Requeued:
        named = set(ids)
        with self._store.lock:
            dead = self._store.dead
            by_message = {i for i in named if i not in dead}
            chosen = {k: d.message_id for k, d in dead.items() if k in named or d.message_id in by_message}
        moved = await self._requeue(chosen, before_move)
        return Requeued.of(ids, [(d.id, d.message_id) for d in moved])

    async def _requeue(self, chosen: dict[str, str], before_move: BeforeMove | None) -> list[DeadLetter]:
        """Move the ``chosen`` dead letters (their task ids by key) back to their queues."""
        if before_move is not None and chosen:
            await before_move(list(dict.fromkeys(chosen.values())))
        now = time.time()
        with self._store.lock:  # what another requeue took meanwhile is not moved twice
            moved = [self._store.dead.pop(key) for key in chosen if key in self._store.dead]
            for letter in moved:
                self._store.add(Message(letter.message_id, letter.queue, letter.body), now)
        self._store.wake_all()
        return moved

    async def purge_dead(self, queue: str | None = None) -> int:
        with self._store.lock:
            chosen = [k for k, d in self._store.dead.items() if queue in (None, d.queue)]
            for key in chosen:
                del self._store.dead[key]
        return len(chosen)

    def result_store(self) -> ResultStore:
        return self._results

    def tally_store(self) -> TallyStore:
        return self._store.tallies

    def record_store(self) -> RecordStore:
        return self._store.records

    def limit_store(self) -> LimitStore:
        return self._store.limits

    async def close(self) -> None:
        await self._results.close()


class MemoryResults(ResultStore):
    """The result store of a ``MemoryBroker``: the results of its in-process store."""

    def __init__(self, store: _Store) -> None:
        self._store = store

    async def store(self, results: Sequence[tuple[str, bytes]], ttl: float) -> None:
        expires_at = time.time() + ttl
        with self._store.lock:
            for task_id, record in results:
                self._store.results[task_id] = (record, expires_at)
            hubs = list(self._store.result_waiters)
        for hub in hubs:
            hub.poke()

    async def get(self, task_id: str) -> bytes | None:
        return (await self.get_many([task_id])).get(task_id)

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, bytes]:
        now = time.time()
        with self._store.lock:
            found = [(task_id, self._store.results.get(task_id)) for task_id in task_ids]
        return {task_id: item[0] for task_id, item in found if item is not None and item[1] >= now}

    def make_waiters(self) -> Waiters:
        """Polling, and woken by ``store`` of any store object on the same memory store."""
        waiters = PollingWaiters(self)
        with self._store.lock:
            self._store.result_waiters.add(waiters)
        return waiters

    async def forget(self, task_ids: Sequence[str]) -> None:
        with self._store.lock:
            for task_id in task_ids:
                self._store.results.pop(task_id, None)

    async def close(self) -> None:
        """Only the waiters' hub: the store lives as long as the process."""
        await self.close_waiters()
