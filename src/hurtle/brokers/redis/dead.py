"""Dead letters in Redis: one stream per queue, ``P:{q}:dead``, with the fields
``id`` (the message id: the task id), ``body``, ``reason`` and ``failed_at``.

A dead letter's id is ``<queue>:<entry id>``. A task id names no queue and the
streams are not indexed by it, so requeueing by task id reads each queue's dead
stream through, a batch at a time, and moves what it found with ``requeue.lua``,
which moves each entry atomically and says which it moved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

from hurtle.brokers.base import BeforeMove, DeadLetter, Requeued, unknown_ids
from hurtle.brokers.redis.lanes import RedisConn
from hurtle.brokers.redis.link import RedisLink
from hurtle.brokers.redis.url import Keys, entry_order, is_entry_id

_REQUEUE_BATCH = 1000  # dead letters moved, or read through, per call



async def known_queues(conn: RedisConn, keys: Keys) -> list[str]:
    """Every queue ever sent to, sorted."""
    members = cast("set[bytes]", await conn.client.smembers(keys.queues))
    return sorted(q.decode(errors="replace") for q in members)

class RedisDeadLetters:
    """The dead letters of a ``RedisBroker``'s queues, on the broker's link."""

    def __init__(self, keys: Keys, link: RedisLink) -> None:
        self.keys = keys
        self._link = link

    async def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        async def collect(conn: RedisConn) -> list[tuple[tuple[int, int], DeadLetter]]:
            names = [queue] if queue is not None else await known_queues(conn, self.keys)
            pipe = conn.client.pipeline(transaction=False)
            for name in names:
                pipe.xrevrange(self.keys.dead(name), count=limit)
            found = []
            for name, entries in zip(names, await pipe.execute(), strict=True):
                for entry_id, fields in entries:
                    found.append((entry_order(entry_id), _dead_letter(name, entry_id, fields)))
            return found

        found = await self._link.call(collect)
        found.sort(key=lambda pair: pair[0], reverse=True)
        return [letter for _, letter in found[:limit]]

    async def requeue_dead(
        self, ids: Sequence[str] | None = None, before_move: BeforeMove | None = None
    ) -> int:
        if ids is not None:
            return (await self.requeue_dead_by_id(ids, before_move)).count
        moved: list[tuple[str, str]] = []  # kept across the link's retries, as below

        async def move(conn: RedisConn) -> None:
            for name in await known_queues(conn, self.keys):
                dead = self.keys.dead(name)
                # Up to the newest now: a requeued message dead again meanwhile waits for the next requeue.
                newest = cast("list[tuple[bytes, object]]", await conn.client.xrevrange(dead, count=1))
                start = "-"
                while newest:
                    entries = cast(
                        "list[tuple[bytes, dict[bytes, bytes]]]",
                        await conn.client.xrange(dead, min=start, max=newest[0][0], count=_REQUEUE_BATCH),
                    )
                    if not entries:
                        break
                    batch = {e.decode(): f.get(b"id", b"").decode(errors="replace") for e, f in entries}
                    moved.extend(await self._requeue(conn, name, batch, before_move))
                    start = "(" + entries[-1][0].decode()

        await self._link.call(move)
        return len(moved)

    async def requeue_dead_by_id(self, ids: Sequence[str], before_move: BeforeMove | None = None) -> Requeued:
        # Kept across the link's retries: what moved before a lost connection stays moved.
        moved: list[tuple[str, str]] = []

        async def move(conn: RedisConn) -> None:
            by_queue: dict[str, list[str]] = {}
            for named in ids:
                name, _, entry_id = named.rpartition(":")
                if name and is_entry_id(entry_id):
                    by_queue.setdefault(name, []).append(entry_id)
            for name, entry_ids in by_queue.items():
                # Their task ids are read only for ``before_move``: requeue.lua reads them anyway.
                found = dict.fromkeys(entry_ids, "")
                if before_move is not None:
                    found = await self._task_ids(conn, name, entry_ids)
                moved.extend(await self._requeue(conn, name, found, before_move))
            # The rest are task ids (or name nothing): a dead stream is not indexed
            # by message id, so each queue's is read through.
            rest = set(unknown_ids(ids, moved))
            for name in await known_queues(conn, self.keys) if rest else ():
                found = await self._dead_entries_of(conn, name, rest)
                moved.extend(await self._requeue(conn, name, found, before_move))

        await self._link.call(move)
        return Requeued.of(ids, moved)

    async def _requeue(
        self, conn: RedisConn, queue: str, named: dict[str, str], before_move: BeforeMove | None
    ) -> list[tuple[str, str]]:
        """Move the ``named`` dead letters of ``queue`` (their task ids by entry id),
        telling ``before_move`` first; return each one's (dead letter id, message id)."""
        if not named:
            return []
        if before_move is not None:
            await before_move(list(dict.fromkeys(task_id for task_id in named.values() if task_id)))
        keys = [self.keys.dead(queue), self.keys.stream(queue)]
        flat = cast("list[bytes]", await conn.script("requeue", keys, list(named)))
        return [
            (f"{queue}:{entry_id.decode()}", message_id.decode(errors="replace"))
            for entry_id, message_id in zip(flat[::2], flat[1::2], strict=True)
        ]

    async def _task_ids(self, conn: RedisConn, queue: str, entry_ids: list[str]) -> dict[str, str]:
        """Those of ``queue``'s dead letters named by ``entry_ids`` that exist: their task ids."""
        pipe = conn.client.pipeline(transaction=False)
        for entry_id in entry_ids:
            pipe.xrange(self.keys.dead(queue), min=entry_id, max=entry_id)
        found = cast("list[list[tuple[bytes, dict[bytes, bytes]]]]", await pipe.execute())
        return {
            entry_id.decode(): fields.get(b"id", b"").decode(errors="replace")
            for entries in found for entry_id, fields in entries
        }

    async def _dead_entries_of(self, conn: RedisConn, queue: str, message_ids: set[str]) -> dict[str, str]:
        """``queue``'s dead letters whose message id is one of ``message_ids``: their
        message ids by entry id."""
        found: dict[str, str] = {}
        start = "-"
        while True:
            entries = cast(
                "list[tuple[bytes, dict[bytes, bytes]]]",
                await conn.client.xrange(self.keys.dead(queue), min=start, count=_REQUEUE_BATCH),
            )
            for entry_id, fields in entries:
                message_id = fields.get(b"id", b"").decode(errors="replace")
                if message_id in message_ids:
                    found[entry_id.decode()] = message_id
            if len(entries) < _REQUEUE_BATCH:
                return found
            start = "(" + entries[-1][0].decode()

    async def purge_dead(self, queue: str | None = None) -> int:
        async def purge(conn: RedisConn) -> int:
            names = [queue] if queue is not None else await known_queues(conn, self.keys)
            pipe = conn.client.pipeline(transaction=True)
            for name in names:
                pipe.xlen(self.keys.dead(name))
                pipe.delete(self.keys.dead(name))
            replies = await pipe.execute()
            return sum(int(n) for n in replies[::2])

        return await self._link.call(purge)


def _timestamp(raw: bytes | None) -> float:
    """A dead letter's ``failed_at``; NaN when it is no number (written by hand or
    by another program), so the letter is still listed."""
    try:
        return float(raw or 0)
    except ValueError:
        return math.nan


def _dead_letter(queue: str, entry_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    return DeadLetter(
        id=f"{queue}:{entry_id.decode()}",
        queue=queue,
        body=fields.get(b"body", b""),
        reason=fields.get(b"reason", b"").decode(errors="replace"),
        failed_at=_timestamp(fields.get(b"failed_at")),
        message_id=fields.get(b"id", b"").decode(errors="replace"),
    )
